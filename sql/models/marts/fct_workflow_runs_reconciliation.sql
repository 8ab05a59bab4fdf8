-- Insights workflow runs vs the usage export's, per project x workflow x ISO week, where both
-- sources cover the run: from the day of the project's first Insights run on (before it,
-- runs come from the export alone and there is nothing to compare). Matched runs (same
-- workflow id) are compared on outcome and stop time; unmatched ones are counted by side.
with

runs as (

    select * from {{ ref('fct_workflow_runs') }}

),

coverage as (

    select project_slug, min(run_date) as insights_from
    from {{ ref('fct_workflow_runs') }}
    where source in ('insights', 'both')
    group by project_slug

),

covered as (

    select
        runs.*,
        cast(date_trunc('week', runs.run_date) as date) as week_start,
        runs.source = 'both' and runs.outcome is not distinct from runs.export_outcome as outcome_agrees,
        abs(epoch_ms(runs.stopped_at) - epoch_ms(runs.export_stopped_at)) <= 1000 as stop_time_agrees,

    from runs
    inner join coverage
        on runs.project_slug = coverage.project_slug
        and runs.run_date >= coverage.insights_from

),

final as (

    select
        any_value(org_id) as org_id,
        project_slug,
        workflow_name,
        week_start,
        count(*) filter (where source in ('insights', 'both')) as insights_runs,
        count(*) filter (where source in ('usage_export', 'both')) as export_runs,
        count(*) filter (where source = 'both') as matched_runs,
        count(*) filter (where source = 'insights') as insights_only_runs,
        count(*) filter (where source = 'insights' and is_approval) as insights_only_approval_runs,
        count(*) filter (where source = 'usage_export') as export_only_runs,
        count(*) filter (where outcome_agrees) as outcome_agreements,
        count(*) filter (where source = 'both' and not outcome_agrees) as outcome_disagreements,
        count(*) filter (where source = 'both' and status = 'canceled' and export_outcome = 'failure')
            as canceled_as_failure_runs,
        count(*) filter (where source = 'both' and stop_time_agrees) as stop_time_agreements,
        count(*) filter (where source = 'both' and not coalesce(stop_time_agrees, false))
            as stop_time_disagreements,
        case
            when count(*) filter (where source = 'both') > 0
                then count(*) filter (where outcome_agrees) / count(*) filter (where source = 'both')
        end as outcome_agreement_rate,

    from covered
    group by project_slug, workflow_name, week_start

)

select *, {{ owner_columns() }} from final
