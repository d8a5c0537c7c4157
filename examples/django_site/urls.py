from django.urls import path

from examples.django_site.shop import views

urlpatterns = [
    path("count", views.count),
    path("tasks/<str:task_id>", views.task_state),
]
