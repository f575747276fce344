"""Django settings of the stand-in: production-like (no DEBUG), SQLite, graphene's limits."""

import os

SECRET_KEY = "graphene-stand-in-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["graphene_django", "django_filters", "ppstandin"]
# CommonMiddleware (APPEND_SLASH) stays: it redirects only GETs of paths without a slash whose
# slashed form is routed, so `/graphql/` still answers 404, as on the real server
MIDDLEWARE = ["django.middleware.common.CommonMiddleware", "ppstandin.views.RequestLog"]
ROOT_URLCONF = "ppstandin.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PP_STANDIN_DB"]}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
GRAPHENE = {
    "SCHEMA": "ppstandin.schema.schema",
    # the newer PlusPlus guide: at most 150 items per query
    "RELAY_CONNECTION_MAX_LIMIT": int(os.environ.get("PP_STANDIN_MAX_LIMIT", "150")),
    "RELAY_CONNECTION_ENFORCE_FIRST_OR_LAST": True,
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
