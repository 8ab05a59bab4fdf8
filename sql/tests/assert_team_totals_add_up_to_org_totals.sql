-- Every org's teams add up to the org: in the forecast mart (team rows vs the org row), and
-- the org row against month-to-date credits summed straight from the daily spend mart.
with

forecast as (

    select * from {{ ref('fct_credit_forecast') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

spend as (

    select * from {{ ref('fct_credit_spend_daily') }}

),

teams as (

    select
        org_id,
        org_slug,
        sum(mtd_credits) as mtd_credits,
        sum(forecast_credits) as forecast_credits,
    from forecast
    where not is_org_total
    group by org_id, org_slug

),

from_spend as (

    select spend.org_id, spend.org_slug, sum(spend.total_credits) as mtd_credits
    from spend
    cross join dates
    where spend.spend_date between date_trunc('month', dates.as_of_date) and dates.as_of_date
    group by all

)

select
    orgs.org_id,
    orgs.org_slug,
    orgs.mtd_credits,
    teams.mtd_credits as team_mtd_credits,
    from_spend.mtd_credits as spend_mtd_credits,
    orgs.forecast_credits,
    teams.forecast_credits as team_forecast_credits,
from forecast as orgs
left join teams on orgs.org_id = teams.org_id and orgs.org_slug = teams.org_slug
left join from_spend on orgs.org_id = from_spend.org_id and orgs.org_slug = from_spend.org_slug
where orgs.is_org_total
    and (
        teams.org_id is null
        or orgs.mtd_credits <> teams.mtd_credits
        or orgs.forecast_credits <> teams.forecast_credits
        or orgs.mtd_credits <> coalesce(from_spend.mtd_credits, 0)
    )
