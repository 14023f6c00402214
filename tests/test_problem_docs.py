"""The spec tells the truth about problems: own example per status, problem+json only, and
problem type URIs that resolve to pages of the service."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from dbsize.config import Settings
from dbsize.errors import DbsizeError
from dbsize.main import create_app
from dbsize.problem_pages import PROBLEM_TYPES

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    app: FastAPI = create_app(Settings.model_construct())
    return app.openapi()


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _subclasses(cls: type[DbsizeError]) -> list[type[DbsizeError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


class TestProblemResponses:
    def test_every_problem_response_is_problem_json_with_its_own_example(
        self, spec: dict[str, Any]
    ) -> None:
        wrong = []
        for name, operation in _operations(spec):
            for code, response in operation["responses"].items():
                if int(code) < 400:
                    continue
                content = response.get("content", {})
                if list(content) != ["application/problem+json"]:
                    wrong.append(f"{name} {code}: media types {list(content)}")
                    continue
                example = content["application/problem+json"].get("example")
                if example is None or example["status"] != int(code):
                    wrong.append(f"{name} {code}: example {example}")
                elif not example["type"].startswith("/problems/"):
                    wrong.append(f"{name} {code}: type {example['type']}")
        assert wrong == []

    def test_a_route_declares_only_what_it_can_answer(self, spec: dict[str, Any]) -> None:
        declared = {
            name: sorted(int(code) for code in operation["responses"] if int(code) >= 400)
            for name, operation in _operations(spec)
        }
        assert declared["GET /healthz"] == []
        assert declared["GET /readyz"] == [503]
        assert declared["GET /v1/instances"] == [401, 422, 503]
        assert declared["GET /v1/instances/{instance_id}"] == [401, 404, 422, 503]
        assert declared["POST /v1/size-samples"] == [401, 403, 413, 415, 422, 503]

    def test_queued_job_example_is_not_done(self, spec: dict[str, Any]) -> None:
        accepted = spec["paths"]["/v1/aggregation-jobs"]["post"]["responses"]["202"]
        example = accepted["content"]["application/json"]["example"]
        assert example["status"] == "queued"
        assert example["done"] is False

    def test_job_submission_offers_a_named_example_per_scope(self, spec: dict[str, Any]) -> None:
        body = spec["paths"]["/v1/aggregation-jobs"]["post"]["requestBody"]
        examples = body["content"]["application/json"]["examples"]
        assert sorted(examples) == ["as-of", "incremental", "range", "today"]
        assert examples["incremental"]["value"] == {"incremental": True}


class TestProblemPages:
    def test_every_problem_class_has_a_page(self) -> None:
        slugs = {cls.type_slug for cls in _subclasses(DbsizeError)}
        assert slugs - set(PROBLEM_TYPES) == set()

    @pytest.mark.parametrize("slug", sorted(PROBLEM_TYPES))
    async def test_page_resolves_without_a_key(self, anon_client: AsyncClient, slug: str) -> None:
        response = await anon_client.get(f"/problems/{slug}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert f"<h1>{PROBLEM_TYPES[slug][0]}</h1>" in response.text

    async def test_a_problem_type_in_an_answer_resolves(self, anon_client: AsyncClient) -> None:
        missing = await anon_client.get("/problems/no-such-type")
        assert missing.status_code == 404
        assert missing.json()["type"] == "/problems/not-found"
        page = await anon_client.get(missing.json()["type"])
        assert page.status_code == 200
