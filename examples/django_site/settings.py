"""Settings of the example Django project: OmniQ is one installed app and one setting.

python examples/django_site/manage.py omniq_worker          # a worker
python examples/django_site/manage.py runserver             # the site, in another terminal

curl -X POST -d 'text=to be or not to be' localhost:8000/count   # {"task_id": "..."}
curl localhost:8000/tasks/<task_id>                              # {"status": "success", "result": 6}
"""

import os

SECRET_KEY = "an example only: never use this key"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["omniq.integrations.django", "examples.django_site.shop"]
ROOT_URLCONF = "examples.django_site.urls"
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# the omniq.yaml shape: the backend (here SQLite in the working folder, or SHOP_OMNIQ_URL such as
# redis://localhost:6379/0), results and events beside it, the project's name
OMNIQ = {
    "project_name": os.environ.get("SHOP_OMNIQ_PROJECT", "shop"),
    "task_queue": os.environ.get("SHOP_OMNIQ_URL", "sqlite:///shop-tasks.db"),
}
