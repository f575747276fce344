"""`path("graphql", ...)` without a trailing slash, as the vendor's examples post to it."""

from django.urls import path

from ppstandin import views

urlpatterns = [
    path("graphql", views.graphql),
    path("_health", views.health),
    path("_truth/<str:entity>", views.truth),
    path("_mutate", views.mutate),
    path("_requests", views.requests_log),
]
