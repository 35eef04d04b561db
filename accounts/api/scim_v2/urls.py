"""``/scim/v2/accounts/<account_id>/…``: the account's SCIM 2.0 service provider."""

from __future__ import annotations

from django.urls import path, re_path

from accounts.api.scim_v2 import views

urlpatterns = [
    path(".search", views.RootSearchView.as_view()),
    path("Users/.search", views.UsersSearchView.as_view()),
    path("Groups/.search", views.GroupsSearchView.as_view()),
    path("Users", views.UsersView.as_view()),
    path("Users/<str:user_id>", views.UserView.as_view()),
    path("Groups", views.GroupsView.as_view()),
    path("Groups/<str:group_id>", views.GroupView.as_view()),
    path("ServiceProviderConfig", views.ServiceProviderConfigView.as_view()),
    path("ResourceTypes", views.ResourceTypesView.as_view()),
    path("ResourceTypes/<str:type_id>", views.ResourceTypesView.as_view()),
    path("Schemas", views.SchemasView.as_view()),
    path("Schemas/<str:schema_id>", views.SchemasView.as_view()),
    re_path(r"^.*$", views.NotFoundView.as_view()),
]
