# bench/lakebench.sh, sourced by bench/lake-load.sh and bench/lake-rss.sh: the config, credentials and port
# their Lake loads share.
# lakebench_config FILE ROOT [LAKE_MEMORY_LIMIT]: a config whose responder key may load ROOT into Lake.
lakebench_config() {
	{
		printf 'event_history:\n  retention_days: 0\nlake:\n  import_roots: ["%s"]\n' "$2"
		[ -n "${3:-}" ] && printf '  memory_limit: %s\n' "$3"
		cat <<YAML
accounts:
  - id: "123837392027"
    users:
      - name: responder
        responder: true
        access_keys:
          - id: AKIABENCH00000000001
            secret: bench-secret
YAML
	} >"$1"
}
export AWS_ACCESS_KEY_ID=AKIABENCH00000000001 AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# A port below the ephemeral range (internal/testaddr says why).
port=$((10000 + RANDOM % 20000))
url=http://127.0.0.1:$port
