pytest_plugins = ["tests.pg_fixtures", "tests.s3_fixtures", "tests.engine_fixtures"]
