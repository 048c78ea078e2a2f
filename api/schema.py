"""The OpenAPI schema's view of errors: every operation documents the error answers it can give, so a client
(and schemathesis's "status code conformance" check) finds each status the API returns in the schema."""
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

DETAIL = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})
FIELD_ERRORS = OpenApiResponse(
    inline_serializer("FieldErrors", {
        "non_field_errors": serializers.ListField(child=serializers.CharField(), required=False),
        "detail": serializers.CharField(required=False)}),
    description="Bad input: each field at fault with its messages ({\"field\": [\"message\"]}, nested for nested "
                "lists; the bulk answers {\"errors\": [{index, field, message}]}), or a bad query value.")


class PortalAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the error answers every operation may give added where the view does not
    declare them: 400 (bad body, filter or query value), 401 (no or bad token), 403 (the role does not allow it),
    404 (an object the user may not see, on paths with an id) and 409 (refused by the object's state, on
    writes)."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = {"400": FIELD_ERRORS, "401": OpenApiResponse(DETAIL, description="Not authenticated."),
                  "403": OpenApiResponse(DETAIL, description="Not allowed for your role.")}
        if "{" in self.path:
            errors["404"] = OpenApiResponse(DETAIL, description="Not found, or you may not see it.")
        if self.method != "GET":
            errors["409"] = OpenApiResponse(DETAIL, description="Refused by the object's state (in use, running).")
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses
