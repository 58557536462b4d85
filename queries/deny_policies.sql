-- name: deny_policies
-- description: Which policies determined the denies: per policy and version, denies, distinct principals and requests.
-- determining_policies is usually an array of {"policy": name}; a deny without one counts under NULL.
WITH denies AS (
    SELECT
        *,
        CASE TRY(json_type(determining_policies_json))
            WHEN 'ARRAY' THEN TRY(json_extract_string(determining_policies_json, '$[*].policy'))
            ELSE []
        END AS policies
    FROM unique_events
    WHERE lower(decision) = 'deny'
),
per_policy AS (
    SELECT
        unnest(CASE WHEN len(policies) = 0 THEN [NULL] ELSE policies END) AS policy,
        policy_set_version_id,
        coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) AS principal_id,
        request_id,
        occurred_at
    FROM denies
)
SELECT
    policy,
    policy_set_version_id,
    count(*) AS denies,
    count(DISTINCT principal_id) AS principals,
    count(DISTINCT request_id) AS requests,
    min(occurred_at) AS first_deny,
    max(occurred_at) AS last_deny
FROM per_policy
GROUP BY policy, policy_set_version_id
ORDER BY denies DESC, policy NULLS LAST, policy_set_version_id
