"""Routes for block types, schemas, documents and capabilities, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.blocks import views

urlpatterns = [
    path("block_types/", views.BlockTypeCreateApi.as_view()),
    path("block_types/filter", views.BlockTypeFilterApi.as_view()),
    path("block_types/install_system_block_types", views.BlockTypeInstallSystemApi.as_view()),
    path("block_types/slug/<str:slug>", views.BlockTypeBySlugApi.as_view()),
    path("block_types/slug/<str:slug>/block_documents", views.BlockDocumentsOfTypeApi.as_view()),
    path(
        "block_types/slug/<str:slug>/block_documents/name/<str:name>",
        views.BlockDocumentByTypeAndNameApi.as_view(),
    ),
    path("block_types/<str:block_type_id>", views.BlockTypeDetailApi.as_view()),
    path("block_schemas/", views.BlockSchemaCreateApi.as_view()),
    path("block_schemas/filter", views.BlockSchemaFilterApi.as_view()),
    path("block_schemas/checksum/<str:checksum>", views.BlockSchemaByChecksumApi.as_view()),
    path("block_schemas/<str:block_schema_id>", views.BlockSchemaDetailApi.as_view()),
    path("block_documents/", views.BlockDocumentCreateApi.as_view()),
    path("block_documents/filter", views.BlockDocumentFilterApi.as_view()),
    path("block_documents/count", views.BlockDocumentCountApi.as_view()),
    path("block_documents/<str:block_document_id>", views.BlockDocumentDetailApi.as_view()),
    path("block_capabilities/", views.BlockCapabilitiesApi.as_view()),
]
