"""A Django project in one module for the hosting differential test
(test_hosting_differential.py): settings, URLs and views, served unchanged through
Django's WSGI handler by gunicorn (sync workers) and by CovetPy (``--interface
wsgi``): /echo and the routes every hosted app has."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="differential-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
    LOGGING_CONFIG=None,
    DEFAULT_CHARSET="utf-8",
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path, re_path  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

from echo_shape import NO_BODY, UNICODE_TEXT, describe, pattern, wsgi_view  # noqa: E402


def echo(request: HttpRequest, rest: str = "") -> HttpResponse:
    body = request.body
    headers, extra = wsgi_view(request.META)
    doc = describe(
        framework="django", method=request.method or "", path=request.path_info,
        query_string=request.META.get("QUERY_STRING", ""),
        query=[(k, v) for k, vs in request.GET.lists() for v in vs],
        headers=headers, cookies=request.COOKIES.items(), body=body, extra=extra,
    )  # fmt: skip
    return JsonResponse(doc)


@require_GET
def only_get(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"only": "get"})


def status(request: HttpRequest, code: int) -> HttpResponse:
    if code in NO_BODY:
        return HttpResponse(status=code)
    return HttpResponse(f"status {code}\n", status=code, content_type="text/plain")


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in the handler")


def http_error(request: HttpRequest) -> HttpResponse:
    raise Http404("nothing here")


def redirect(request: HttpRequest) -> HttpResponse:
    resp = HttpResponseRedirect(request.GET.get("to", "/echo/landed"))
    resp.status_code = int(request.GET.get("code", 302))
    return resp


def set_cookies(request: HttpRequest) -> HttpResponse:
    resp = HttpResponse("cookies set\n", content_type="text/plain")
    resp.set_cookie("session", "abc123", httponly=True, path="/")
    resp.set_cookie("theme", "dark", max_age=3600, samesite="Strict")
    resp.set_cookie("quoted", "a b,c", secure=True)
    return resp


def unicode(request: HttpRequest) -> HttpResponse:
    return HttpResponse(UNICODE_TEXT, content_type="text/plain; charset=utf-8", headers={"x-latin1": "caf\u00e9"})


def unicode_json(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"text": UNICODE_TEXT})


def headers_repeat(request: HttpRequest) -> HttpResponse:
    # Django's response headers are a case-insensitive dict: one value per name.
    return HttpResponse("repeated\n", content_type="text/plain", headers={"x-multi": "one, two", "x-empty": "",
                                                                           "vary": "accept"})  # fmt: skip


def large(request: HttpRequest) -> HttpResponse:
    return HttpResponse(pattern(int(request.GET.get("size", 1 << 20))), content_type="application/octet-stream")


def stream(request: HttpRequest) -> HttpResponse:
    n, size = int(request.GET.get("n", 3)), int(request.GET.get("size", 10))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield pattern(size, i * size)

    return StreamingHttpResponse(chunks(), content_type="text/plain")


@require_POST
def form(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"form": [[k, v] for k, vs in request.POST.lists() for v in vs]})


urlpatterns = [
    path("echo", echo),
    re_path(r"^echo/(?P<rest>.*)$", echo),
    path("only-get", only_get),
    path("status/<int:code>", status),
    path("error", error),
    path("http-error", http_error),
    path("redirect", redirect),
    path("cookies/set", set_cookies),
    path("unicode", unicode),
    path("unicode/json", unicode_json),
    path("headers/repeat", headers_repeat),
    path("large", large),
    path("stream", stream),
    path("form", form),
]

app = get_wsgi_application()
