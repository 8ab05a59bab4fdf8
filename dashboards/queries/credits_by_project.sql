-- Credit spend per day by project (and branch, for the branch filter).
-- One row per UTC day x project x branch: usage-export total credits (all credit types)
-- and dollars, from fct_credit_spend_daily. Drawn as one line per project on the Credit
-- spend page (anomalies from credit_anomalies.sql marked) and as daily totals on Overview.
select
    spend_date as credit_date,
    project_slug,
    branch,
    sum(total_credits) as credits,
    sum(total_usd) as usd,
from fct_credit_spend_daily
group by all
order by credit_date, project_slug, branch
