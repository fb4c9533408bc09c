import os

pytest_plugins = ["tests.pg_fixtures", "tests.s3_fixtures", "tests.engine_fixtures"]

# The suite's older tests build and take apart format-1 snapshots (one tar part per folder or bucket);
# they keep doing so, which is what keeps reading format 1 tested. Tests of format 2 (tests/test_v2_*.py)
# set DRGUI_SNAPSHOT_FORMAT=2 themselves (the default of drgui outside the tests).
os.environ.setdefault("DRGUI_SNAPSHOT_FORMAT", "1")
