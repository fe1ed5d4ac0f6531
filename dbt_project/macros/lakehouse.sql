{#- Where the lakehouse is, and what every dbt run checks and prepares before building anything. -#}

{% macro lakehouse_root() -%}
  {{ return(env_var('TECHMART_LAKEHOUSE', '../lakehouse')) }}
{%- endmacro %}


{% macro check_lakehouse_session() %}
  {#- Fail before building anything if dbt's Spark is not the project's: another Spark version than
      the pyspark that Dagster's assets use, or a session without Delta. -#}
  {% if execute %}
    {% set version = run_query("select split(version(), ' ')[0]").columns[0].values()[0] %}
    {% set expected = env_var('TECHMART_SPARK_VERSION', '') %}
    {% if expected and version != expected %}
      {{ exceptions.raise_compiler_error(
          "dbt's Spark is " ~ version ~ " but the project's pyspark is " ~ expected
          ~ ": run dbt through `techmart dbt` or Dagster, which pin SPARK_HOME to the pyspark wheel.") }}
    {% endif %}
    {% set extensions = run_query("select '${spark.sql.extensions}'").columns[0].values()[0] %}
    {% if 'DeltaSparkSessionExtension' not in extensions %}
      {{ exceptions.raise_compiler_error(
          "dbt's Spark session has no Delta extension: run dbt through `techmart dbt` or Dagster, "
          ~ "which pass the Delta jars fetched by `make setup` (TECHMART_SPARK_JARS).") }}
    {% endif %}
  {% endif %}
{% endmacro %}


{% macro register_silver_sources() %}
  {#- The silver Delta tables, written by Spark outside dbt, registered in the metastore at their
      lakehouse paths so models can select from them as dbt sources. -#}
  {% if execute %}
    {% for source in graph.sources.values() if source.source_name == 'silver' %}
      {% if loop.first %}
        {% do run_query("create database if not exists " ~ source.schema) %}
      {% endif %}
      {% do run_query(
          "create table if not exists " ~ source.schema ~ "." ~ source.identifier
          ~ " using delta location '" ~ lakehouse_root() ~ "/silver/" ~ source.identifier ~ "'") %}
    {% endfor %}
  {% endif %}
{% endmacro %}


{% macro generate_schema_name(custom_schema_name, node) -%}
  {#- Models land in the schema their folder names (gold, staging), not `<target>_<custom>`. -#}
  {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
