# AWS: one moto server emulates S3, DynamoDB, SNS and Rekognition. Sourced by with-emulators.
# Exports THISTHAT_MOTO_URL, which the thisthat-aws tests require.
#
# moto runs under scripts/emulators/moto_serialized.py, which answers one request at a time:
# moto's stock threaded server lets concurrent conditional writes to one item race, which real
# DynamoDB never does.

# start_aws [NAME]: NAME (default moto) names its log; scripts/flake-hunt starts a second one.
start_aws() {
    local name="${1:-moto}" port
    pip_install 'moto[server]>=5.1,<6'
    port="$(free_port)"
    start_background "$name" "$(venv_bin python)" "$(dirname "${BASH_SOURCE[0]}")/moto_serialized.py" 127.0.0.1 "$port"
    wait_http "$name" "http://127.0.0.1:$port/moto-api/"
    export THISTHAT_MOTO_URL="http://127.0.0.1:$port"
}
