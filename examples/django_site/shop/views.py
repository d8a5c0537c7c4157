"""Views use OmniQ's sync API: ``word_count.enqueue(...)`` and ``get_omniq()``."""

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from examples.django_site.shop.tasks import word_count
from omniq.integrations.django import get_omniq


@csrf_exempt
@require_POST
def count(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"task_id": word_count.enqueue(request.POST["text"])})


@require_GET
def task_state(request: HttpRequest, task_id: str) -> JsonResponse:
    oq = get_omniq()
    task = oq.get_task(task_id)
    if task is None:
        raise Http404(f"no task {task_id!r}")
    done = task.status.value == "success"
    return JsonResponse(
        {"status": task.status.value, "result": oq.get_result(task_id, timeout=0) if done else None}
    )
