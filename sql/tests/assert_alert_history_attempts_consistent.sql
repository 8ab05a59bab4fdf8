-- Every alert row was attempted at least once, and a delivered one between its first and last attempt.
select *
from {{ ref('fct_alert_history') }}
where attempts < 1
    or first_attempt_at is null
    or last_attempt_at < first_attempt_at
    or delivered_at < first_attempt_at
    or delivered_at > last_attempt_at
