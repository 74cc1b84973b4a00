# Azure: Azurite (npm) emulates Blob, Table and Queue storage. Sourced by with-emulators.
# Exports THISTHAT_AZURITE_BLOB_URL and THISTHAT_AZURITE_TABLE_URL (path-style account URLs
# of the well-known development account devstoreaccount1), which the thisthat-azure tests
# require. Notification Hubs and AI Vision have no emulator: their tests use a local HTTP fake.

start_azure() {
    # 3.35.x is the newest Azurite that runs on Node 20.
    if [[ ! -f "$THISTHAT_TOOLS/npm/node_modules/azurite/dist/src/azurite.js" ]]; then
        npm_install 'azurite@~3.35.0'
    fi
    command -v node >/dev/null || die "node is not installed: install Node.js 20"
    local blob_port table_port queue_port
    blob_port="$(free_port)"
    table_port="$(free_port)"
    queue_port="$(free_port)"
    # The server process itself (not npx) so that its PID is the one stop_emulators ends.
    # --disableTelemetry: it would phone home otherwise. --skipApiVersionCheck: the 1.x blob
    # crate sends a newer x-ms-version than Azurite knows.
    start_background azurite node "$THISTHAT_TOOLS/npm/node_modules/azurite/dist/src/azurite.js" \
        --silent --disableTelemetry --inMemoryPersistence --skipApiVersionCheck \
        --blobHost 127.0.0.1 --blobPort "$blob_port" \
        --tableHost 127.0.0.1 --tablePort "$table_port" \
        --queueHost 127.0.0.1 --queuePort "$queue_port"
    wait_http azurite-blob "http://127.0.0.1:$blob_port/devstoreaccount1?comp=list"
    wait_http azurite-table "http://127.0.0.1:$table_port/devstoreaccount1/Tables"
    export THISTHAT_AZURITE_BLOB_URL="http://127.0.0.1:$blob_port/devstoreaccount1"
    export THISTHAT_AZURITE_TABLE_URL="http://127.0.0.1:$table_port/devstoreaccount1"
}
