# AWS: one moto server emulates S3, DynamoDB, SNS and Rekognition. Sourced by with-emulators.
# Exports THISTHAT_MOTO_URL, which the thisthat-aws tests require.
#
# moto runs under scripts/emulators/moto_serialized.py, which answers one request at a time:
# moto's stock threaded server lets concurrent conditional writes to one item race, which real
# DynamoDB never does.

start_aws() {
    pip_install 'moto[server]>=5.1,<6'
    local port
    port="$(free_port)"
    start_background moto "$(venv_bin python)" "$(dirname "${BASH_SOURCE[0]}")/moto_serialized.py" 127.0.0.1 "$port"
    wait_http moto "http://127.0.0.1:$port/moto-api/"
    export THISTHAT_MOTO_URL="http://127.0.0.1:$port"
}
