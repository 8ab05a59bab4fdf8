-- Credit anomalies: project-days above their trailing 28-day mean + 3 standard deviations.
-- One row per anomalous project x UTC day, from fct_credit_anomalies (needs 14 days of
-- history; days without jobs count as 0). Marked on the credits-by-project chart and listed.
select
    spend_date as credit_date,
    project_slug,
    org_slug,
    team,
    credits,
    trailing_28d_mean_credits,
    trailing_28d_stddev_credits,
    threshold_credits,
    excess_credits,
from fct_credit_anomalies
where is_anomaly
order by credit_date, project_slug
