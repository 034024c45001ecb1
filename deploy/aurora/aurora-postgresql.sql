-- Generated from fleetload-db's ml::install_aurora (endpoint auroraml-churn-endpoint,
-- batch 100); `fleetload prepare --scenario churn --ml aurora --ml-endpoint NAME` runs the
-- same statements. The customers table comes first: `fleetload prepare` creates and loads it.
CREATE EXTENSION IF NOT EXISTS aws_ml CASCADE;

DROP TRIGGER IF EXISTS customers_predict_insert ON customers;

DROP TRIGGER IF EXISTS customers_predict_update ON customers;

DROP FUNCTION IF EXISTS customers_predict();

CREATE OR REPLACE FUNCTION will_churn(state TEXT, account_length BIGINT, area_code BIGINT, intl_plan TEXT, vmail_plan TEXT, vmail_message BIGINT, day_mins DOUBLE PRECISION, day_calls BIGINT, eve_mins DOUBLE PRECISION, eve_calls BIGINT, night_mins DOUBLE PRECISION, night_calls BIGINT, intl_mins DOUBLE PRECISION, intl_calls BIGINT, custserv_calls BIGINT, max_rows_per_batch INT DEFAULT 100) RETURNS VARCHAR LANGUAGE SQL PARALLEL SAFE STABLE COST 5000 AS $fn$ SELECT aws_sagemaker.invoke_endpoint('auroraml-churn-endpoint', max_rows_per_batch, state, account_length, area_code, intl_plan, vmail_plan, vmail_message, day_mins, day_calls, eve_mins, eve_calls, night_mins, night_calls, intl_mins, intl_calls, custserv_calls)::VARCHAR $fn$;

CREATE FUNCTION customers_predict() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' OR NEW.churn_prediction IS NULL THEN
    NEW.churn_prediction := will_churn(NEW.state, NEW.account_length, NEW.area_code, NEW.intl_plan, NEW.vmail_plan, NEW.vmail_message, NEW.day_mins, NEW.day_calls, NEW.eve_mins, NEW.eve_calls, NEW.night_mins, NEW.night_calls, NEW.intl_mins, NEW.intl_calls, NEW.custserv_calls);
    NEW.predicted_at := clock_timestamp();
  END IF;
  RETURN NEW;
END
$fn$;

CREATE TRIGGER customers_predict_insert BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION customers_predict();

CREATE TRIGGER customers_predict_update BEFORE UPDATE OF state, account_length, area_code, intl_plan, vmail_plan, vmail_message, day_mins, day_calls, eve_mins, eve_calls, night_mins, night_calls, intl_mins, intl_calls, custserv_calls ON customers FOR EACH ROW EXECUTE FUNCTION customers_predict();
