#!/usr/bin/env bash
# From an empty Google Cloud project to thisthat on Cloud Run: APIs, the runtime service account
# and its roles, the photo bucket, Firestore and its indexes, the Cloud Run service. Each step is
# a gcloud command printed before it runs; DRY_RUN=1 only prints them (scripts/lint-deploy does
# that). Safe to run again: steps whose resource already exists say so and go on.
#
#   PROJECT_ID=my-project REGION=europe-west1 APP_ORIGIN=https://app.example.com \
#     IMAGE=europe-west1-docker.pkg.dev/my-project/thisthat/thisthat:v1 deploy/gcp/setup.sh
#
# Needs: gcloud, signed in as a project owner, billing enabled, the project added to Firebase
# (for FCM and Firebase Auth), and IMAGE pushed (docs/deploy.md builds it from
# deploy/Containerfile).
set -euo pipefail

: "${PROJECT_ID:?set PROJECT_ID to the Google Cloud project id}"
: "${APP_ORIGIN:?set APP_ORIGIN to the web app origin, e.g. https://app.example.com}"
REGION="${REGION:-europe-west1}"
BUCKET="${BUCKET:-$PROJECT_ID-thisthat-photos}"
IMAGE="${IMAGE:-$REGION-docker.pkg.dev/$PROJECT_ID/thisthat/thisthat:latest}"
DRY_RUN="${DRY_RUN:-0}"
SA_NAME=thisthat-run
SA="$SA_NAME@$PROJECT_ID.iam.gserviceaccount.com"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Prints a command, then runs it unless DRY_RUN=1.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [[ "$DRY_RUN" != 1 ]]; then
        "$@"
    fi
}

# Like run, for creations: an "already exists" answer is not a failure on a second run.
create() {
    local out
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    [[ "$DRY_RUN" == 1 ]] && return 0
    if ! out="$("$@" 2>&1)"; then
        if grep -qi 'already exists' <<<"$out"; then
            echo "  (already there)"
        else
            echo "$out" >&2
            return 1
        fi
    fi
}

echo "== APIs"
run gcloud services enable --project "$PROJECT_ID" \
    run.googleapis.com firestore.googleapis.com storage.googleapis.com vision.googleapis.com \
    fcm.googleapis.com iamcredentials.googleapis.com artifactregistry.googleapis.com

echo "== the runtime service account"
create gcloud iam service-accounts create "$SA_NAME" --project "$PROJECT_ID" \
    --display-name "thisthat on Cloud Run"

echo "== photos: a private bucket, CORS for the app's signed uploads"
create gcloud storage buckets create "gs://$BUCKET" --project "$PROJECT_ID" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention
# A browser PUTs a photo with the signed URL of POST /v1/uploads and the three headers that URL
# signs (docs/gcp.md); Cloud Storage's CORS lists request headers under responseHeader.
cat >"$WORK/cors.json" <<EOF
[{"origin": ["$APP_ORIGIN"], "method": ["PUT", "GET"],
  "responseHeader": ["Content-Type", "x-goog-content-length-range", "x-goog-if-generation-match"],
  "maxAgeSeconds": 3600}]
EOF
run gcloud storage buckets update "gs://$BUCKET" --cors-file "$WORK/cors.json"

echo "== Firestore (native mode) and the indexes its queries need (deploy/gcp/firestore.indexes.json)"
create gcloud firestore databases create --project "$PROJECT_ID" --location "$REGION" --type firestore-native
create gcloud firestore indexes composite create --project "$PROJECT_ID" --async \
    --collection-group competitions --query-scope COLLECTION \
    --field-config field-path=status,order=ascending \
    --field-config field-path=__name__,order=descending
create gcloud firestore indexes composite create --project "$PROJECT_ID" --async \
    --collection-group competitions --query-scope COLLECTION \
    --field-config field-path=categories,array-config=contains \
    --field-config field-path=status,order=ascending \
    --field-config field-path=__name__,order=descending
create gcloud firestore indexes composite create --project "$PROJECT_ID" --async \
    --collection-group notifications --query-scope COLLECTION \
    --field-config field-path=delivered,order=ascending \
    --field-config field-path=leased_until_ms,order=ascending

echo "== roles of the runtime service account (docs/gcp.md, Credentials and IAM)"
# Objects of this bucket only: create, read, delete, list.
run gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" \
    --member "serviceAccount:$SA" --role roles/storage.objectUser
# Signing URLs without a key goes through IAM signBlob, on its own account only.
run gcloud iam service-accounts add-iam-policy-binding "$SA" --project "$PROJECT_ID" \
    --member "serviceAccount:$SA" --role roles/iam.serviceAccountTokenCreator
run gcloud projects add-iam-policy-binding "$PROJECT_ID" \
    --member "serviceAccount:$SA" --role roles/datastore.user --condition None
run gcloud projects add-iam-policy-binding "$PROJECT_ID" \
    --member "serviceAccount:$SA" --role roles/firebasecloudmessaging.admin --condition None
# Cloud Vision needs only the right to use the project's enabled APIs.
run gcloud projects add-iam-policy-binding "$PROJECT_ID" \
    --member "serviceAccount:$SA" --role roles/serviceusage.serviceUsageConsumer --condition None

echo "== the Cloud Run service (deploy/gcp/service.yaml)"
sed -e "s|REGION-docker.pkg.dev/PROJECT_ID/thisthat/thisthat:latest|$IMAGE|" \
    -e "s|PROJECT_ID|$PROJECT_ID|g" -e "s|BUCKET|$BUCKET|g" \
    "$HERE/service.yaml" >"$WORK/service.yaml"
if [[ -n "${SERVICE_YAML_OUT:-}" ]]; then
    cp "$WORK/service.yaml" "$SERVICE_YAML_OUT"
fi
run gcloud run services replace "$WORK/service.yaml" --project "$PROJECT_ID" --region "$REGION"
# The app calls the API directly; thisthat itself checks the Firebase ID token on every write.
run gcloud run services add-iam-policy-binding thisthat --project "$PROJECT_ID" --region "$REGION" \
    --member allUsers --role roles/run.invoker

# The maintenance schedule. `thisthat serve` has no background maintenance pass yet, and there
# is no one-shot `thisthat deliver` to run from a Cloud Run job yet (issue 14): today a result
# push is sent by the closing vote's request, and one that failed then stays pending. Once
# `thisthat deliver` exists, MAINTENANCE=1 creates a Cloud Run job running it and a Cloud
# Scheduler job starting that job every minute, as the runtime service account.
if [[ "${MAINTENANCE:-0}" == 1 ]]; then
    echo "== maintenance: a Cloud Run job on a Cloud Scheduler schedule"
    run gcloud services enable --project "$PROJECT_ID" cloudscheduler.googleapis.com
    create gcloud run jobs create thisthat-maintenance --project "$PROJECT_ID" --region "$REGION" \
        --image "$IMAGE" --args deliver --service-account "$SA" \
        --set-env-vars "THISTHAT_STORAGE=gs://$BUCKET,THISTHAT_DATABASE=firestore://$PROJECT_ID,THISTHAT_NOTIFIER=fcm://$PROJECT_ID,THISTHAT_CLASSIFIER=vision://?bucket=$BUCKET,THISTHAT_DATA_DIR=/tmp/thisthat"
    # Starting the job is the only thing the scheduler's identity may do.
    run gcloud run jobs add-iam-policy-binding thisthat-maintenance --project "$PROJECT_ID" \
        --region "$REGION" --member "serviceAccount:$SA" --role roles/run.invoker
    create gcloud scheduler jobs create http thisthat-maintenance --project "$PROJECT_ID" \
        --location "$REGION" --schedule "* * * * *" --http-method POST \
        --uri "https://run.googleapis.com/v2/projects/$PROJECT_ID/locations/$REGION/jobs/thisthat-maintenance:run" \
        --oauth-service-account-email "$SA"
else
    echo "== maintenance: not scheduled (no one-shot maintenance command exists yet; docs/deploy.md)"
fi

if [[ "$DRY_RUN" != 1 ]]; then
    echo "== done: $(gcloud run services describe thisthat --project "$PROJECT_ID" --region "$REGION" --format 'value(status.url)')"
fi
