{#- The Dagster partition window, [min_date, max_date), passed as vars on every Dagster run. -#}

{% macro in_window(column) -%}
  {%- if var('min_date', none) and var('max_date', none) -%}
    {{ column }} >= date'{{ var("min_date") }}' and {{ column }} < date'{{ var("max_date") }}'
  {%- else -%}
    true
  {%- endif -%}
{%- endmacro %}


{#- A data test of a model built by window (incremental, `window_column` set) checks the window's
    rows only, when its result depends on the model's rows alone (not_null, unique, accepted_values,
    ...): a daily run tests its day, not the whole history again (a run without the window vars,
    `dbt build` by hand, still tests every row). The days outside the window were tested by the runs
    that built them, and the window replaces whole days (replace_where), so no changed row goes
    untested. A relationships test still reads every row: the model it points at is rebuilt whole
    every day (a dimension's rebuilt version chain may drop a version an earlier day's sale points
    at). A test's own `where` config still applies. This overrides dbt's macro of the same name,
    which applies `where` alone. -#}

{% macro get_where_subquery(relation) -%}
  {%- set conditions = [] -%}
  {%- if config.get('where') -%}
    {%- do conditions.append('(' ~ config.get('where') ~ ')') -%}
  {%- endif -%}
  {%- set tested = graph.nodes.get(model.attached_node) if execute and model.attached_node else none -%}
  {%- set test_name = (model.test_metadata or {}).get('name') -%}
  {%- if tested and tested.config.get('window_column') and test_name != 'relationships'
        and var('min_date', none) and var('max_date', none) -%}
    {%- do conditions.append(in_window(tested.config.get('window_column'))) -%}
  {%- endif -%}
  {%- if conditions -%}
    {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
  {%- endif -%}
  {%- do return(relation) -%}
{%- endmacro %}
