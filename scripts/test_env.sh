# Sourced by `make test`: starts the throwaway PostgreSQL the request-log tests use and exports its URL.
eval "$(bash scripts/ci_postgres.sh)"
export LITELLM_LOCAL_MODEL_COST_MAP=True
export ORT_DISABLE_TELEMETRY=1
