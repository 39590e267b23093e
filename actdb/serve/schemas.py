"""What the API declares: request and response models, the one error shape, and the media
types of its binary answers, so that a client generated from ``/openapi.json`` parses every
answer the server sends.

>>> sorted(ERRORS)[:3], ERRORS[413]["content"]["application/json"]["schema"]["$ref"]
([400, 401, 403], '#/components/schemas/ErrorBody')
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error the server sends: one line, and what kind of error it is."""

    error: str = Field(description="What went wrong and what to do next, in one line.")
    type: str = Field(description="The error's class, e.g. QueryError or ValidationError.")


_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

#: The error statuses the API sends, each with the error shape (as JSON, also where the
#: route's own answer is an image; :func:`declare_error_body` adds its schema).
ERRORS: dict[int | str, dict[str, Any]] = {code: {"description": why, "content": _ERROR_JSON}
                                           for code, why in {
    400: "A query the store cannot answer: unknown image id or class, a vector of the wrong "
         "dim, not exactly one of image / image_id / vector, an unreadable image.",
    401: "The server has a token and the request did not carry it.",
    403: "SQL that is not one read-only statement over the store; a path outside a root.",
    404: "No such image, map, plot kind or path.",
    405: "The path does not take this method (the Allow header lists those it takes).",
    409: "The store lacks what the request needs (e.g. statistics: run actdb stats).",
    413: "An upload larger than the server's limit.",
    422: "A parameter or body of the wrong type or out of range.",
    500: "The store is damaged (run actdb check).",
    503: "The model's weights are unavailable on the server.",
    504: "The SQL statement ran past the server's time limit.",
}.items()}


def declare_error_body(app) -> None:
    """Add :class:`ErrorBody` to the app's OpenAPI components (the routes refer to it)."""
    made = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schemas = made().setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorBody"] = ErrorBody.model_json_schema()
        return app.openapi_schema

    app.openapi = openapi


def binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 answer of raw bytes of this media type."""
    return {200: {"description": description, "content": {
        media_type: {"schema": {"type": "string", "format": "binary"}}}}}


class JPEGResponse(Response):
    media_type = "image/jpeg"


class PNGResponse(Response):
    media_type = "image/png"


class BytesResponse(Response):
    media_type = "application/octet-stream"


# The query's parts of a multipart form: exactly one of them. Optional, never nullable (a
# client leaves a part out rather than sending "None"); an empty part counts as left out.
# ``format: binary`` is how OpenAPI generators know a part is a file to upload.
ImagePart = Annotated[UploadFile, File(description="An image file to embed (PNG, JPEG, ...).",
                                       json_schema_extra={"format": "binary"})]
#: the largest image id (images.image_id is a BIGINT): beyond it a 422, never an overflow
MAX_ID = 2**63 - 1
ImageIdPart = Annotated[int, Form(ge=0, le=MAX_ID, description="The id of a stored image.")]
VectorPart = Annotated[str, Form(description="A JSON list of the store's dim numbers.")]


class Health(BaseModel):
    status: str = Field(description='"ok" while the server answers.')
    model_ready: bool = Field(description="Whether image queries can be embedded.")
    images: int = Field(description="Images in the store.")


class SpaceInfo(BaseModel):
    """One space of the store (``GET /api/spaces``)."""

    name: str = Field(description="MODEL/LAYER, e.g. vgg19/block5_conv4.")
    default: bool = Field(description="Whether a query without a space asks this one.")
    model: str | None
    layer: str | None
    pool: str | None
    dim: int
    image_size: int | None = None
    precision: str | None = None
    fingerprint: str | None
    shards: int
    vectors: int
    index: str | None = Field(None, description="The index kind, or null before one.")
    onnx: bool = Field(description="Whether the space keeps its model as ONNX for queries.")
    view: str = Field(description="The SQL view of its vectors.")


class AcrossRow(BaseModel):
    """Where one query lands in one space (``POST /api/across``, ``nearest?space=all``)."""

    query: str
    space: str
    default: bool
    top_class: str | None = Field(description="The class the k nearest images vote for.")
    vote_share: float
    top_classes: str = Field(description="The first classes of the vote with their shares.")
    nearest_centroid: str | None
    centroid_distance: float | None
    inside_p95: bool | None = Field(description="Whether the query lies inside the nearest "
                                    "class's p95 radius.")
    ratio_to_p95: float | None
    nn_distance: float | None
    nn_percentile: float | None
    route: str | None = Field(description="How an image query was embedded (onnx-fp32, "
                              "keras-bf16...); null for a stored image's own vector.")


class SqlRequest(BaseModel):
    """One read-only statement over the store's views."""

    sql: str = Field(min_length=1, description="e.g. SELECT count(*) FROM images")
    max_rows: int | None = Field(None, ge=1, description="At most this many rows (the "
                                 "server's own limit applies too).")


class SqlResult(BaseModel):
    columns: list[str]
    truncated: bool = Field(description="Whether rows beyond the limit were left off.")
    rows: list[list[Any]]
