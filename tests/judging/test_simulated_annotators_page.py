"""Simulated annotators have a page: create one, change its judge, noise and seed, remove it."""
import pytest
from django.urls import reverse

from annotation.models import Membership
from judging.models import SimulatedAnnotator
from judging.services import judge_create
from tests.factories import EndpointFactory, MembershipFactory, UserFactory
from tests.helpers import login

pytestmark = pytest.mark.django_db



@pytest.fixture
def judges(workspace):
    ep = EndpointFactory(workspace=workspace, name="ep", model="m")
    return (judge_create(workspace=workspace, name="uf", endpoint=ep),
            judge_create(workspace=workspace, name="pw", endpoint=ep, method="pairwise"),
            judge_create(workspace=workspace, name="clair", endpoint=ep, method="clair"))


def test_create_configure_and_remove(admin_user, workspace, judges):
    uf, pw, clair = judges
    c = login(admin_user)
    url = reverse("evaluation-simulated-annotators", args=[workspace.pk])
    assert "No simulated annotator yet" in c.get(url).content.decode()
    r = c.post(url, {"name": "noisy", "judge": uf.pk, "flip_probability": "0.25", "seed": "7"}, follow=True)
    assert "Simulated annotator noisy created (user sim-noisy)" in r.content.decode()
    sim = SimulatedAnnotator.objects.get(workspace=workspace, name="noisy")
    assert (sim.judge, sim.flip_probability, sim.seed) == (uf, 0.25, 7)
    assert Membership.objects.get(user=sim.user, workspace=workspace).is_simulated
    assert 'data-annotator="noisy"' in r.content.decode()

    r = c.post(url, {"annotator": sim.pk, "judge": pw.pk, "flip_probability": "0.1", "seed": "8"}, follow=True)
    sim.refresh_from_db()
    assert (sim.judge, sim.flip_probability, sim.seed) == (pw, 0.1, 8)
    assert "noisy now uses judge pw, p = 0.1, seed 8" in r.content.decode()

    # bad input: a clear error, nothing changed
    r = c.post(url, {"annotator": sim.pk, "judge": clair.pk, "flip_probability": "0.1", "seed": "8"})
    assert r.status_code == 422 and "needs a judge that ranks" in r.content.decode()
    r = c.post(url, {"annotator": sim.pk, "judge": pw.pk, "flip_probability": "2", "seed": "8"})
    assert r.status_code == 422 and "less than or equal to 1" in r.content.decode()
    r = c.post(url, {"name": "noisy", "judge": uf.pk, "flip_probability": "0", "seed": "0"})
    assert r.status_code == 422 and "exists in this workspace" in r.content.decode()
    r = c.post(url, {"name": "", "judge": uf.pk, "flip_probability": "0", "seed": "0"})
    assert r.status_code == 422 and "required" in r.content.decode()
    sim.refresh_from_db()
    assert (sim.judge, sim.flip_probability) == (pw, 0.1) and SimulatedAnnotator.objects.count() == 1

    r = c.post(reverse("evaluation-simulated-annotator-remove", args=[workspace.pk, sim.pk]), follow=True)
    assert "removed; its answers stay" in r.content.decode()
    assert not SimulatedAnnotator.objects.exists()
    assert not Membership.objects.filter(user__username="sim-noisy").exists()


def test_only_the_workspace_admins(workspace, annotator, judges):
    url = reverse("evaluation-simulated-annotators", args=[workspace.pk])
    assert login(annotator).get(url).status_code == 403
    stranger = UserFactory()
    MembershipFactory(user=stranger, role="admin")
    assert login(stranger).post(url, {"name": "x", "judge": judges[0].pk, "flip_probability": "0",
                                      "seed": "0"}).status_code == 404
    assert not SimulatedAnnotator.objects.exists()
