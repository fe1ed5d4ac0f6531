{#- Where the lakehouse is, and what every dbt run checks before building anything. -#}

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
    {#- The catalog is in memory: without the lakehouse's tables registered first, an incremental
        model would not find its table and would rebuild it from this run's window alone.
        (`compile` only renders SQL and needs no table.) -#}
    {% set uses_tables = flags.WHICH in ('build', 'run', 'seed', 'snapshot', 'test', 'run-operation') %}
    {% if uses_tables and env_var('TECHMART_DBT_REGISTERED_LAKEHOUSE', '') != lakehouse_root() %}
      {{ exceptions.raise_compiler_error(
          "The lakehouse " ~ lakehouse_root() ~ " has not been registered in dbt's Spark catalog: "
          ~ "run dbt through `techmart dbt` or Dagster, which register its tables before building.") }}
    {% endif %}
  {% endif %}
{% endmacro %}


{% macro generate_schema_name(custom_schema_name, node) -%}
  {#- Models land in the schema their folder names (gold, staging), not `<target>_<custom>`. -#}
  {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
