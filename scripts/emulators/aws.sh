# AWS: one moto server emulates S3, DynamoDB, SNS and Rekognition. Sourced by with-emulators.
# Exports THISTHAT_MOTO_URL, which the thisthat-aws tests require.

start_aws() {
    pip_install 'moto[server]>=5.1,<6'
    local port
    port="$(free_port)"
    start_background moto "$(venv_bin moto_server)" -H 127.0.0.1 -p "$port"
    wait_http moto "http://127.0.0.1:$port/moto-api/"
    export THISTHAT_MOTO_URL="http://127.0.0.1:$port"
}
