"""botocore's generate_db_auth_token for fixed inputs and a fixed clock: the reference
fleetload's tokens are compared with byte for byte (aws/tests/token_vs_botocore.rs).

Input: one JSON object per line on stdin; output: one token per line."""
import datetime
import json
import sys
from unittest import mock

import botocore.session

for line in sys.stdin:
    a = json.loads(line)
    session = botocore.session.get_session()
    session.set_credentials(a["key"], a["secret"], a.get("token"))
    client = session.create_client("rds", region_name=a["region"])
    fixed = datetime.datetime.fromtimestamp(a["unix"], tz=datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", lambda *_, **__: fixed):
        print(client.generate_db_auth_token(a["host"], a["port"], a["user"], Region=a["region"]))
