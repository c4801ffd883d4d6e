"""factory_boy factories shared by the suite."""
import factory
from django.contrib.auth import get_user_model

from annotation.models import Dataset, Field, Membership, Question, Record, Response, Workspace


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
