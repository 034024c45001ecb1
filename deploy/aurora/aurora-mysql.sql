-- Generated from fleetload-db's ml::install_aurora (endpoint auroraml-churn-endpoint,
-- batch 100); `fleetload prepare --scenario churn --ml aurora --ml-endpoint NAME` runs the
-- same statements. The customers table comes first: `fleetload prepare` creates and loads it.
DELIMITER //
DROP TRIGGER IF EXISTS customers_predict_insert//

DROP TRIGGER IF EXISTS customers_predict_update//

DROP FUNCTION IF EXISTS will_churn//

CREATE FUNCTION will_churn(state VARCHAR(2048), account_length BIGINT, area_code BIGINT, intl_plan VARCHAR(2048), vmail_plan VARCHAR(2048), vmail_message BIGINT, day_mins DOUBLE, day_calls BIGINT, eve_mins DOUBLE, eve_calls BIGINT, night_mins DOUBLE, night_calls BIGINT, intl_mins DOUBLE, intl_calls BIGINT, custserv_calls BIGINT) RETURNS VARCHAR(2048) CHARSET utf8mb4 ALIAS AWS_SAGEMAKER_INVOKE_ENDPOINT ENDPOINT NAME 'auroraml-churn-endpoint' MAX_BATCH_SIZE 100//

CREATE TRIGGER customers_predict_insert BEFORE INSERT ON customers FOR EACH ROW
BEGIN
  IF NEW.churn_prediction IS NULL THEN
    SET NEW.churn_prediction = will_churn(NEW.state, NEW.account_length, NEW.area_code, NEW.intl_plan, NEW.vmail_plan, NEW.vmail_message, NEW.day_mins, NEW.day_calls, NEW.eve_mins, NEW.eve_calls, NEW.night_mins, NEW.night_calls, NEW.intl_mins, NEW.intl_calls, NEW.custserv_calls), NEW.predicted_at = NOW(6);
  END IF;
END//

CREATE TRIGGER customers_predict_update BEFORE UPDATE ON customers FOR EACH ROW
BEGIN
  IF NOT (NEW.state <=> OLD.state AND NEW.account_length <=> OLD.account_length AND NEW.area_code <=> OLD.area_code AND NEW.intl_plan <=> OLD.intl_plan AND NEW.vmail_plan <=> OLD.vmail_plan AND NEW.vmail_message <=> OLD.vmail_message AND NEW.day_mins <=> OLD.day_mins AND NEW.day_calls <=> OLD.day_calls AND NEW.eve_mins <=> OLD.eve_mins AND NEW.eve_calls <=> OLD.eve_calls AND NEW.night_mins <=> OLD.night_mins AND NEW.night_calls <=> OLD.night_calls AND NEW.intl_mins <=> OLD.intl_mins AND NEW.intl_calls <=> OLD.intl_calls AND NEW.custserv_calls <=> OLD.custserv_calls) THEN
    SET NEW.churn_prediction = will_churn(NEW.state, NEW.account_length, NEW.area_code, NEW.intl_plan, NEW.vmail_plan, NEW.vmail_message, NEW.day_mins, NEW.day_calls, NEW.eve_mins, NEW.eve_calls, NEW.night_mins, NEW.night_calls, NEW.intl_mins, NEW.intl_calls, NEW.custserv_calls), NEW.predicted_at = NOW(6);
  END IF;
END//
DELIMITER ;
