"""ingester.codec.classification: the versioned eventSource/eventName -> category/subtype table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from ingester.codec import classification
from ingester.codec.classification import TABLE, Classification, TableError, load_table
from ingester.codec.cloudtrail import Record
from ingester.demo.generate import generate_records

TABLE_TEXT = (Path(classification.__file__).parent / "classification.toml").read_text(encoding="utf-8")

# The eventNames that dominate CloudTrail volume in typical AWS accounts (reads and data events of the big
# services, STS, sign-ins, IAM and security changes), by service: the table must give each a real class.
COMMON: dict[str, list[str]] = {
    "sts.amazonaws.com": ["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "GetCallerIdentity",
                          "GetSessionToken", "GetFederationToken", "DecodeAuthorizationMessage"],
    "signin.amazonaws.com": ["ConsoleLogin", "CheckMfa", "SwitchRole", "ExitRole", "GetSigninToken",
                             "UserAuthentication", "CredentialChallenge", "CredentialVerification"],
    "sso.amazonaws.com": ["GetRoleCredentials", "ListAccountRoles", "ListAccounts", "Federate", "Authenticate",
                          "Logout", "ListApplications", "CreateAccountAssignment", "ListPermissionSets"],
    "sso-oauth.amazonaws.com": ["CreateToken"],
    "kms.amazonaws.com": ["Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt",
                          "DescribeKey", "ListAliases", "ListKeys", "GetKeyPolicy", "GetKeyRotationStatus",
                          "ListResourceTags", "CreateGrant", "RetireGrant", "ScheduleKeyDeletion", "DisableKey",
                          "PutKeyPolicy", "RotateKey", "Sign"],
    "s3.amazonaws.com": ["GetObject", "PutObject", "HeadObject", "HeadBucket", "ListObjects", "ListObjectsV2",
                         "ListBuckets", "GetBucketLocation", "GetBucketAcl", "GetBucketPolicy",
                         "GetBucketVersioning", "GetBucketEncryption", "GetBucketTagging", "GetBucketLogging",
                         "GetBucketPublicAccessBlock", "GetBucketPolicyStatus", "GetBucketOwnershipControls",
                         "DeleteObject", "DeleteObjects", "CopyObject", "CreateMultipartUpload", "UploadPart",
                         "CompleteMultipartUpload", "PutBucketPolicy", "PutBucketAcl", "PutObjectAcl",
                         "PutBucketPublicAccessBlock", "CreateBucket", "DeleteBucket", "GetObjectTagging",
                         "PutObjectTagging", "ListObjectVersions", "GetBucketCors", "GetAccountPublicAccessBlock"],
    "ec2.amazonaws.com": ["DescribeInstances", "DescribeInstanceStatus", "DescribeSecurityGroups", "DescribeVolumes",
                          "DescribeSnapshots", "DescribeImages", "DescribeSubnets", "DescribeVpcs",
                          "DescribeNetworkInterfaces", "DescribeRegions", "DescribeAvailabilityZones",
                          "DescribeTags", "DescribeAddresses", "DescribeRouteTables", "DescribeKeyPairs",
                          "DescribeLaunchTemplates", "DescribeInstanceTypes", "DescribeAccountAttributes",
                          "RunInstances", "TerminateInstances", "StartInstances", "StopInstances", "CreateTags",
                          "DeleteTags", "CreateSnapshot", "DeleteSnapshot", "CreateVolume", "AttachVolume",
                          "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "CreateSecurityGroup",
                          "CreateNetworkInterface", "DeleteNetworkInterface", "ModifyInstanceAttribute",
                          "CreateKeyPair", "GetPasswordData", "ModifySnapshotAttribute", "CreateFlowLogs"],
    "iam.amazonaws.com": ["GetRole", "GetUser", "GetPolicy", "GetPolicyVersion", "GetRolePolicy",
                          "GetAccountSummary", "GetAccountPasswordPolicy", "ListRoles", "ListUsers", "ListPolicies",
                          "ListAttachedRolePolicies", "ListRolePolicies", "ListAccessKeys", "ListMFADevices",
                          "ListGroupsForUser", "ListInstanceProfilesForRole", "ListRoleTags",
                          "GenerateServiceLastAccessedDetails", "GetAccountAuthorizationDetails",
                          "GenerateCredentialReport", "GetCredentialReport", "CreateUser", "DeleteUser",
                          "CreateAccessKey", "DeleteAccessKey", "UpdateAccessKey", "CreateLoginProfile",
                          "UpdateLoginProfile", "AttachUserPolicy", "AttachRolePolicy", "DetachRolePolicy",
                          "PutRolePolicy", "CreateRole", "DeleteRole", "UpdateAssumeRolePolicy", "CreatePolicy",
                          "CreatePolicyVersion", "AddUserToGroup", "EnableMFADevice", "DeactivateMFADevice",
                          "CreateServiceLinkedRole", "TagRole"],
    "ssm.amazonaws.com": ["GetParameter", "GetParameters", "GetParametersByPath", "DescribeParameters",
                          "UpdateInstanceInformation", "ListInstanceAssociations", "DescribeInstanceInformation",
                          "PutParameter", "SendCommand", "StartSession", "GetCommandInvocation",
                          "ListCommandInvocations", "DescribeAssociation", "GetDocument"],
    "ssmmessages.amazonaws.com": ["CreateControlChannel", "OpenControlChannel"],
    "ec2messages.amazonaws.com": ["GetMessages", "AcknowledgeMessage", "SendReply"],
    "secretsmanager.amazonaws.com": ["GetSecretValue", "DescribeSecret", "ListSecrets", "PutSecretValue",
                                     "CreateSecret", "RotateSecret"],
    "dynamodb.amazonaws.com": ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                               "BatchWriteItem", "DescribeTable", "ListTables", "DescribeTimeToLive",
                               "DescribeContinuousBackups"],
    "lambda.amazonaws.com": ["Invoke", "GetFunction", "ListFunctions20150331", "GetFunctionConfiguration",
                             "UpdateFunctionCode20150331v2", "UpdateFunctionConfiguration20150331v2",
                             "CreateFunction20150331", "AddPermission20150331v2", "ListEventSourceMappings20150331"],
    "sqs.amazonaws.com": ["ReceiveMessage", "SendMessage", "DeleteMessage", "GetQueueAttributes", "GetQueueUrl",
                          "ListQueues", "ChangeMessageVisibility", "SendMessageBatch", "DeleteMessageBatch"],
    "sns.amazonaws.com": ["Publish", "ListTopics", "GetTopicAttributes", "ListSubscriptionsByTopic", "Subscribe"],
    "logs.amazonaws.com": ["CreateLogStream", "PutLogEvents", "DescribeLogGroups", "DescribeLogStreams",
                           "FilterLogEvents", "GetLogEvents", "CreateLogGroup", "DeleteLogGroup",
                           "PutRetentionPolicy", "StartQuery", "GetQueryResults", "PutSubscriptionFilter"],
    "monitoring.amazonaws.com": ["GetMetricData", "GetMetricStatistics", "ListMetrics", "DescribeAlarms",
                                 "PutMetricData", "PutMetricAlarm", "DeleteAlarms"],
    "cloudtrail.amazonaws.com": ["LookupEvents", "DescribeTrails", "GetTrailStatus", "GetEventSelectors",
                                 "ListTrails", "StopLogging", "StartLogging", "DeleteTrail", "UpdateTrail",
                                 "PutEventSelectors", "CreateTrail"],
    "config.amazonaws.com": ["PutEvaluations", "DescribeConfigRules", "DescribeConfigurationRecorders",
                             "StopConfigurationRecorder", "DeleteConfigurationRecorder"],
    "ecr.amazonaws.com": ["GetAuthorizationToken", "BatchGetImage", "GetDownloadUrlForLayer",
                          "BatchCheckLayerAvailability", "DescribeRepositories", "DescribeImages", "PutImage",
                          "ListImages"],
    "ecs.amazonaws.com": ["DescribeServices", "DescribeTasks", "ListTasks", "ListClusters", "DescribeClusters",
                          "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService", "RunTask",
                          "SubmitTaskStateChange", "DiscoverPollEndpoint", "ExecuteCommand"],
    "eks.amazonaws.com": ["DescribeCluster", "ListClusters", "DescribeNodegroup", "ListNodegroups"],
    "elasticloadbalancing.amazonaws.com": ["DescribeTargetHealth", "DescribeLoadBalancers", "DescribeTargetGroups",
                                           "DescribeListeners", "RegisterTargets", "DeregisterTargets"],
    "autoscaling.amazonaws.com": ["DescribeAutoScalingGroups", "DescribeScalingActivities",
                                  "DescribeLaunchConfigurations", "CompleteLifecycleAction",
                                  "SetDesiredCapacity", "UpdateAutoScalingGroup"],
    "cloudformation.amazonaws.com": ["DescribeStacks", "DescribeStackEvents", "DescribeStackResources",
                                     "ListStacks", "GetTemplate", "CreateStack", "UpdateStack", "DeleteStack",
                                     "CreateChangeSet", "ExecuteChangeSet"],
    "rds.amazonaws.com": ["DescribeDBInstances", "DescribeDBClusters", "DescribeDBSnapshots", "DescribeEvents",
                          "ModifyDBInstance", "CreateDBSnapshot", "ModifyDBSnapshotAttribute"],
    "organizations.amazonaws.com": ["DescribeOrganization", "DescribeAccount", "ListAccounts", "ListRoots",
                                    "ListOrganizationalUnitsForParent", "ListPolicies", "LeaveOrganization",
                                    "AttachPolicy"],
    "route53.amazonaws.com": ["GetChange", "ListHostedZones", "ListResourceRecordSets", "GetHostedZone",
                              "ChangeResourceRecordSets"],
    "guardduty.amazonaws.com": ["GetFindings", "ListDetectors", "ListFindings", "GetDetector", "DeleteDetector",
                                "UpdateDetector", "CreateFilter"],
    "securityhub.amazonaws.com": ["BatchImportFindings", "GetFindings", "DescribeHub", "GetEnabledStandards",
                                  "BatchUpdateFindings", "DisableSecurityHub"],
    "states.amazonaws.com": ["StartExecution", "DescribeExecution", "ListExecutions"],
    "athena.amazonaws.com": ["StartQueryExecution", "GetQueryExecution", "GetQueryResults"],
    "glue.amazonaws.com": ["GetTable", "GetTables", "GetDatabase", "GetDatabases", "GetPartitions"],
    "events.amazonaws.com": ["PutEvents", "PutRule", "PutTargets", "DescribeRule", "ListRules"],
    "kinesis.amazonaws.com": ["PutRecord", "PutRecords", "GetRecords", "DescribeStream", "GetShardIterator"],
    "xray.amazonaws.com": ["PutTraceSegments", "PutTelemetryRecords"],
    "health.amazonaws.com": ["DescribeEvents", "DescribeEventAggregates"],
    "tagging.amazonaws.com": ["GetResources"],
    "access-analyzer.amazonaws.com": ["ListAnalyzers", "ListFindings"],
}  # fmt: skip
COMMON_PAIRS = [(source, name) for source, names in COMMON.items() for name in names]
FALLBACK = TABLE.fallback


def test_the_table_is_versioned_and_loaded_once() -> None:
    assert classification.VERSION == TABLE.version == "2"
    assert classification.classify("s3.amazonaws.com", "GetObject") is classification.classify(
        "s3.amazonaws.com", "GetObject"
    )  # memoized, and Classification values are shared


def test_the_table_names_more_than_200_events_exactly() -> None:
    assert len(TABLE.exact) >= 200
    assert len(TABLE.exact_names) >= 200


def test_the_common_event_names_all_have_a_real_class() -> None:
    assert len(COMMON_PAIRS) >= 200
    assert len({name for _, name in COMMON_PAIRS}) >= 200

    unclassified = [pair for pair in COMMON_PAIRS if classification.classify(*pair) == FALLBACK]

    assert unclassified == []


def test_every_generated_event_name_has_a_real_class() -> None:
    records = generate_records(7, "111122223333", "us-east-1", datetime(2024, 5, 1, tzinfo=UTC), 20_000)
    pairs = {(str(r["eventSource"]), str(r["eventName"])) for r in records}
    assert len(pairs) > 70

    assert [pair for pair in sorted(pairs) if classification.classify(*pair).category == "other"] == []


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("signin.amazonaws.com", "ConsoleLogin", "authentication/console-sign-in"),
        ("sts.amazonaws.com", "AssumeRole", "authentication/assume-role"),
        ("iam.amazonaws.com", "CreateAccessKey", "iam/access-key"),
        ("iam.amazonaws.com", "AttachRolePolicy", "iam/role-policy"),
        ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", "network/security-group"),
        ("s3.amazonaws.com", "GetObject", "data-access/object-read"),
        ("kms.amazonaws.com", "Decrypt", "data-access/key-use"),
        ("ec2.amazonaws.com", "RunInstances", "resource-change/compute-create"),
        ("cloudtrail.amazonaws.com", "StopLogging", "logging/trail-disable"),
        ("s3.amazonaws.com", "PutBucketPublicAccessBlock", "security-config/public-access"),
        ("ssm.amazonaws.com", "SendCommand", "execution/remote-command"),
        ("organizations.amazonaws.com", "LeaveOrganization", "account/organization"),
        ("ssm.amazonaws.com", "UpdateInstanceInformation", "telemetry/agent-heartbeat"),
    ],
)
def test_exact_entries(source: str, name: str, expected: str) -> None:
    assert classification.classify(source, name) == Classification(classification.VERSION, *expected.split("/"))


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        # step 3: verb rules for any service
        ("newservice.amazonaws.com", "DescribeWidgets", "discovery/describe"),
        ("newservice.amazonaws.com", "ListWidgets", "discovery/list"),
        ("newservice.amazonaws.com", "BatchGetWidgets", "discovery/get"),
        ("newservice.amazonaws.com", "CreateWidget", "resource-change/create"),
        ("newservice.amazonaws.com", "DeleteWidget", "resource-change/delete"),
        ("newservice.amazonaws.com", "PutWidgetConfig", "resource-change/update"),
        ("newservice.amazonaws.com", "TagResource", "resource-change/tag"),
        ("newservice.amazonaws.com", "StopWidget", "resource-change/state"),
        # step 2 beats step 3: a security service keeps its meaning for writes...
        ("iam.amazonaws.com", "CreateFutureThing", "iam/other"),
        ("guardduty.amazonaws.com", "UpdateMalwareScanSettings", "security-config/threat-detection"),
        # ...while its reads stay discovery (step 3 before the service default, step 4)
        ("guardduty.amazonaws.com", "DescribeMalwareScans", "discovery/describe"),
        ("kms.amazonaws.com", "ListKeyPolicies", "discovery/list"),
        # step 4: the service's default
        ("guardduty.amazonaws.com", "ArchiveFindings", "security-config/threat-detection"),
        ("sts.amazonaws.com", "SomethingNew", "authentication/session-token"),
        # step 5: nothing matched
        ("newservice.amazonaws.com", "Frobnicate", "other/unclassified"),
        # a prefix matches only at a camel-case word boundary: "Getaway" is not "Get"
        ("newservice.amazonaws.com", "Getaway", "other/unclassified"),
        ("newservice.amazonaws.com", "Get", "discovery/get"),
        ("", "", "other/unclassified"),
    ],
)
def test_rule_order(source: str, name: str, expected: str) -> None:
    assert classification.classify(source, name) == Classification(classification.VERSION, *expected.split("/"))


def test_insights_are_classified_by_insight_type() -> None:
    def record(insight_type: str | None) -> Record:
        details = {"eventSource": "ssm.amazonaws.com", "eventName": "UpdateInstanceInformation", "state": "Start"}
        if insight_type is not None:
            details["insightType"] = insight_type
        body = {"eventType": "AwsCloudTrailInsight", "eventCategory": "Insight", "insightDetails": details}
        return msgspec.json.decode(msgspec.json.encode(body), type=Record)

    assert classification.classify_record(record("ApiCallRateInsight")).subtype == "api-call-rate"
    assert classification.classify_record(record("ApiErrorRateInsight")).subtype == "api-error-rate"
    assert classification.classify_record(record("SomeFutureInsight")).subtype == "other"
    assert classification.classify_record(record(None)).category == "insight"


def test_every_subtype_of_the_taxonomy_is_a_valid_classification() -> None:
    for category, subtypes in TABLE.categories.items():
        assert category == category.lower()
        for subtype in subtypes:
            assert subtype == subtype.lower() and " " not in subtype


def test_ocsf_choices_resolve_to_ocsf_activity_ids() -> None:
    choices = TABLE.ocsf

    assert choices.authentication["signin.amazonaws.com", "ConsoleLogin"] == 1  # Logon
    assert choices.account_change["iam.amazonaws.com", "CreateUser"] == 1  # Create
    assert choices.account_change["iam.amazonaws.com", "EnableMFADevice"] == 10  # MFA Factor Enable
    assert choices.api_verbs["Describe"] == 2  # Read
    assert choices.api_overrides["s3.amazonaws.com", "PutObject"] == 1  # Create
    assert choices.group_management["iam.amazonaws.com", "AddUserToGroup"] == 3  # Add User


# Version 2 (issue 14): what moved between OCSF classes, as (class_uid, activity_id).
MOVED = [
    ("sts.amazonaws.com", "AssumeRole", (3002, 1)),
    ("sts.amazonaws.com", "AssumeRoleWithSAML", (3002, 1)),
    ("sts.amazonaws.com", "AssumeRoleWithWebIdentity", (3002, 1)),
    ("sts.amazonaws.com", "GetFederationToken", (3002, 1)),
    ("sts.amazonaws.com", "GetSessionToken", (3002, 1)),
    ("sts.amazonaws.com", "AssumeRoot", (6003, 1)),  # stays API Activity: Create
    ("iam.amazonaws.com", "CreateRole", (3001, 1)),
    ("iam.amazonaws.com", "DeleteRole", (3001, 6)),
    ("iam.amazonaws.com", "UpdateAssumeRolePolicy", (3001, 99)),
    ("iam.amazonaws.com", "AttachRolePolicy", (3001, 7)),
    ("iam.amazonaws.com", "DeleteRolePermissionsBoundary", (3001, 8)),
    ("iam.amazonaws.com", "CreateAccessKey", (3001, 1)),
    ("iam.amazonaws.com", "DeleteAccessKey", (3001, 6)),
    ("iam.amazonaws.com", "CreateAccountAlias", (3001, 99)),
    ("signin.amazonaws.com", "EmailUpdated", (3001, 99)),
    ("iam.amazonaws.com", "CreateGroup", (3006, 6)),
    ("iam.amazonaws.com", "DeleteGroup", (3006, 5)),
    ("iam.amazonaws.com", "RemoveUserFromGroup", (3006, 4)),
    ("iam.amazonaws.com", "AttachGroupPolicy", (3006, 1)),
    ("iam.amazonaws.com", "DeleteGroupPolicy", (3006, 2)),
    ("iam.amazonaws.com", "CreatePolicy", (6003, 1)),  # a managed policy is no one's account: API Activity
]


@pytest.mark.parametrize(("source", "name", "expected"), MOVED, ids=[name for _, name, _ in MOVED])
def test_ocsf_classes_of_iam_and_sts_events(source: str, name: str, expected: tuple[int, int]) -> None:
    record = Record(event_source=source, event_name=name, read_only=False)

    assert classification.ocsf_kind(record) == expected


def test_an_event_in_two_ocsf_classes_fails_to_load() -> None:
    text = TABLE_TEXT.replace(
        '[ocsf.group_management."iam.amazonaws.com"]\n',
        '[ocsf.group_management."iam.amazonaws.com"]\nCreateUser = "Create"\n',
    )

    with pytest.raises(TableError, match=r"iam\.amazonaws\.com:CreateUser is listed for two classes"):
        load_table(text)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('ConsoleLogin = "authentication/console-sign-in"', 'ConsoleLogin = "authentication/consol-sign-in"',
         "not a subtype"),
        ('ConsoleLogin = "authentication/console-sign-in"', 'ConsoleLogin = "authentication"', "category/subtype"),
        ('ConsoleLogin = "Logon"', 'ConsoleLogin = "Log on"', "no activity 'Log on'"),
        ('"s3.amazonaws.com:PutObject" = "Create"', '"s3.amazonaws.com PutObject" = "Create"', "eventSource:eventName"),
        ('version = "2"', "", "malformed"),
        ('version = "2"', 'version = "2', "not valid TOML"),
    ],
)  # fmt: skip
def test_a_malformed_table_fails_to_load(old: str, new: str, message: str) -> None:
    assert old in TABLE_TEXT

    with pytest.raises(TableError, match=message):
        load_table(TABLE_TEXT.replace(old, new, 1))


def test_a_candidate_table_can_be_loaded_and_tried() -> None:
    """How to extend: add a line, bump the version, load the candidate, check what it now says."""
    candidate = load_table(
        TABLE_TEXT.replace('version = "2"', 'version = "3"').replace(
            '[events."glue.amazonaws.com"]\n', '[events."glue.amazonaws.com"]\nGetTable = "data-access/query"\n'
        )
    )

    assert candidate.classify("glue.amazonaws.com", "GetTable") == Classification("3", "data-access", "query")
    assert classification.classify("glue.amazonaws.com", "GetTable") == Classification("2", "discovery", "get")


def test_the_memo_is_bounded() -> None:
    table = load_table(TABLE_TEXT)
    for index in range(classification._CACHE_LIMIT + 10):
        table.classify("newservice.amazonaws.com", f"DescribeThing{index}")

    assert len(table._cache) <= classification._CACHE_LIMIT
