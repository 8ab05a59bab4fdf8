-- Credit spend per day by resource class.
-- One row per UTC day x project x executor x resource class: usage-export total credits,
-- from fct_credit_spend_project_daily (the rollup of fct_credit_spend_daily to this grain).
-- Stacked bars by resource class.
select
    spend_date as credit_date,
    project_slug,
    executor,
    resource_class,
    total_credits as credits,
from fct_credit_spend_project_daily
order by credit_date, project_slug, resource_class
