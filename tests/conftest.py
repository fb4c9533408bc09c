pytest_plugins = ["tests.pg_fixtures", "tests.engine_fixtures"]
