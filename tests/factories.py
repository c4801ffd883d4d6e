"""factory_boy factories shared by the suite: one per model the tests build. A test passes the
values it checks; everything else gets a plain default here."""
import factory
from django.contrib.auth import get_user_model

from annotation.models import (
    Dataset,
    Field,
    Job,
    JobError,
    Membership,
    Question,
    Record,
    Response,
    Suggestion,
    Workspace,
)
from generation.models import Endpoint
from judging.models import Judge


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-12345678")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"workspace-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = Membership.Role.ANNOTATOR


class DatasetFactory(factory.django.DjangoModelFactory):
    """A pairwise dataset: prompt + response-1/response-2 and one ranking question."""

    class Meta:
        model = Dataset
        skip_postgeneration_save = True

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"dataset-{n}")
    status = Dataset.Status.PUBLISHED
    min_submitted = 1
    shuffle_responses = False

    @factory.post_generation
    def responses(obj, create, extracted, **kwargs):
        n = extracted or 2
        Field.objects.create(dataset=obj, name="prompt", title="Prompt", kind="text", position=0)
        names = [f"response-{i}" for i in range(1, n + 1)]
        for i, name in enumerate(names, start=1):
            Field.objects.create(dataset=obj, name=name, title=f"Response {i}", kind="markdown", position=i)
        Question.objects.create(dataset=obj, name="ranking", title="Rank the responses", kind="ranking",
                                options={"values": names}, position=0)


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Record

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(lambda n: f"rec-{n}")
    fields = factory.LazyAttributeSequence(
        lambda o, n: {"prompt": f"Prompt {n}", "response-1": f"Answer A {n}", "response-2": f"Answer B {n}"})
    metadata = factory.LazyFunction(dict)


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    record = factory.SubFactory(RecordFactory)
    dataset = factory.LazyAttribute(lambda o: o.record.dataset)
    user = factory.SubFactory(UserFactory)
    status = Response.Status.SUBMITTED
    values = factory.LazyFunction(dict)


class FieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Field

    dataset = factory.SubFactory(DatasetFactory)
    name = factory.Sequence(lambda n: f"field-{n}")
    kind = Field.Kind.TEXT


class QuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Question

    dataset = factory.SubFactory(DatasetFactory)
    name = factory.Sequence(lambda n: f"question-{n}")
    kind = Question.Kind.TEXT
    options = factory.LazyFunction(dict)


class SuggestionFactory(factory.django.DjangoModelFactory):
    """A judge's ranking suggestion on the record's ranking question (the factory dataset's layout)."""

    class Meta:
        model = Suggestion

    record = factory.SubFactory(RecordFactory)
    question = factory.LazyAttribute(lambda o: o.record.dataset.questions.get(name="ranking"))
    value = factory.LazyFunction(lambda: [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}])
    agent = "judge"


class JobFactory(factory.django.DjangoModelFactory):
    """A job row as the job engine leaves it; tests give the kind and status they look at."""

    class Meta:
        model = Job

    kind = "export"
    workspace = factory.SubFactory(WorkspaceFactory)
    params = factory.LazyFunction(dict)


class JobErrorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobError

    job = factory.SubFactory(JobFactory)
    item = factory.Sequence(lambda n: f"line {n}")
    error = "rejected"


class EndpointFactory(factory.django.DjangoModelFactory):
    """An OpenAI-compatible endpoint with no server (a test that calls it gives base_url)."""

    class Meta:
        model = Endpoint

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"endpoint-{n}")
    model = factory.Sequence(lambda n: f"model-{n}")


class JudgeFactory(factory.django.DjangoModelFactory):
    """A judge row as stored (judge_create validates; tests of validation call it instead)."""

    class Meta:
        model = Judge

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"judge-{n}")
    endpoint = factory.SubFactory(EndpointFactory, workspace=factory.SelfAttribute("..workspace"))


class TokenFactory(factory.django.DjangoModelFactory):
    """A REST API token (rest_framework.authtoken)."""

    class Meta:
        model = "authtoken.Token"

    user = factory.SubFactory(UserFactory)
