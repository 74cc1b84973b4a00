// Checks Knative serving v1 Service manifests (deploy/gcp/service.yaml, the format Cloud Run's
// `gcloud run services replace` reads) against the Knative Service schema, offline.
//
//   node scripts/lint-knative.mjs NODE_MODULES FILE.yaml...
//
// NODE_MODULES holds @kubernetes-models/knative and yaml (scripts/lint-deploy installs them).
// The schema checks types, enums and required fields; it allows fields it does not know, so a
// misspelt optional field is not caught. Exit status 1 with one line per problem.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error("usage: node scripts/lint-knative.mjs NODE_MODULES FILE.yaml...");
  process.exit(2);
}
const load = (path) => import(pathToFileURL(join(modules, path)).href);
const { Service } = await load("@kubernetes-models/knative/serving.knative.dev/v1/Service.js");
const YAML = (await load("yaml/dist/index.js")).default;

let problems = 0;
for (const file of files) {
  const documents = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  if (documents.length === 0) {
    console.log(`${file}: no YAML document`);
    problems++;
  }
  for (const [i, document] of documents.entries()) {
    const where = `${file} (document ${i + 1})`;
    if (document.errors.length > 0) {
      console.log(`${where}: ${document.errors.map((e) => e.message).join("; ")}`);
      problems++;
      continue;
    }
    const manifest = document.toJS();
    if (manifest?.apiVersion !== "serving.knative.dev/v1" || manifest?.kind !== "Service") {
      console.log(`${where}: not a serving.knative.dev/v1 Service`);
      problems++;
      continue;
    }
    try {
      new Service(manifest).validate();
    } catch (e) {
      console.log(`${where}: ${e.message}`);
      problems++;
    }
  }
}
process.exit(problems > 0 ? 1 : 0);
