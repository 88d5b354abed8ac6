"""The API benchmark's URLconf: the project's routes plus one plain Django view.

The plain view returns a fixed ~1 KB JsonResponse through the same middleware, so its
requests per second are this machine's ceiling for a Django request; the API's figures are
read as ratios to it. bench_api.py selects this module with ROOT_URLCONF; production never does.
"""

from django.http import JsonResponse
from django.urls import path

from config.urls import handler400, handler404, handler500
from config.urls import urlpatterns as project_urlpatterns

PLAIN_PAYLOAD = {
    "results": [
        {"id": n, "name": f"item number {n}", "status": "Alive", "value": n * 1.5}
        for n in range(16)
    ]
}


def plain(request):
    return JsonResponse(PLAIN_PAYLOAD)


urlpatterns = [path("bench/plain/", plain), *project_urlpatterns]
__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]
