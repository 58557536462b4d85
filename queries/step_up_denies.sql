-- name: step_up_denies
-- description: Denies whose diagnostics required a step-up (step_up_required), with the factor asked for.
-- The seed's recipe: jq 'select(.decision == "deny" and any(.diagnostics[]?; has("step_up_required")))'.
-- diagnostics is usually an array of objects; a bare object is read too.
WITH required AS (
    SELECT
        *,
        CASE TRY(json_type(diagnostics_json))
            WHEN 'ARRAY' THEN TRY(json_extract_string(diagnostics_json, '$[*].step_up_required'))
            WHEN 'OBJECT' THEN CASE
                WHEN TRY(json_extract_string(diagnostics_json, '$.step_up_required')) IS NULL THEN []
                ELSE [TRY(json_extract_string(diagnostics_json, '$.step_up_required'))]
            END
            ELSE []
        END AS step_up_factors
    FROM unique_events
    WHERE lower(decision) = 'deny'
)
SELECT
    occurred_at,
    zone_id,
    chain_seq,
    request_id,
    event_type,
    coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) AS principal_id,
    array_to_string(step_up_factors, ', ') AS step_up_required,
    policy_set_version_id,
    TRY_CAST(diagnostics_json AS JSON) AS diagnostics,
    id
FROM required
WHERE len(step_up_factors) > 0
ORDER BY occurred_at, zone_id, chain_seq, id
