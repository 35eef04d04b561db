"""factory_boy factories. Defaults are plain members, never superusers."""

from __future__ import annotations

import factory

from accounts.models import AccountMembership, ServiceAccount, User, WorkspaceRoleGrant
from accounts.permissions import AccountRole, WorkspaceRole
from tenants.models import Account, Workspace


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("correct horse battery staple")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    handle = factory.Sequence(lambda n: f"account-{n}")
    plan = "enterprise"


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Workspace {n}")
    handle = factory.Sequence(lambda n: f"workspace-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccountMembership

    account = factory.SubFactory(AccountFactory)
    user = factory.SubFactory(UserFactory)
    role = AccountRole.MEMBER


class ServiceAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceAccount

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"robot-{n}")


class GrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkspaceRoleGrant

    workspace = factory.SubFactory(WorkspaceFactory)
    role = WorkspaceRole.DEVELOPER
