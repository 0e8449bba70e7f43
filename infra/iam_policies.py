#!/usr/bin/env python3
"""Each function's IAM policy, taken mechanically from infra/template.yaml: the SAM template is
translated offline by aws-sam-translator (as `sam deploy` would, without AWS), and the inline
policies of each function's generated role are printed as JSON, one entry per function (named
by its cargo-lambda binary):

    {"fetch": [{"actions": ["dynamodb:GetItem", ...],
                "resources": ["arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ConfigTable}", ...]},
               ...], ...}

Resources are ARN templates: `${AWS::Region}`, `${AWS::AccountId}` and `${LogicalId}` (the
physical name of a table or queue) are left for the reader to fill in with its own names
(tests/e2e's IAM gate does, with the tables and queues of a test). Managed policies that SAM adds
(AWSLambdaBasicExecutionRole for logs, AWSLambdaSQSQueueExecutionRole for the event source
mapping, which the Lambda service uses, not the function's code) are listed under "managed".

Usage: iam_policies.py [TEMPLATE]   (needs cfn-lint and aws-sam-translator: the .venv of
infra/lint.sh). Exit status 1, naming it, on anything the translation or this script does not
understand.
"""

import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import cfn_yaml  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# How the ARN of each resource type the policies name is built (CloudFormation's Fn::GetAtt Arn).
ARNS = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${%s}",
    "AWS::SQS::Queue": "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:${%s}",
}


class NoManagedPolicies:
    """The translator's policy loader: no AWS call, no managed policy looked up."""

    def load(self, *_args, **_kwargs):
        return {}


def fail(message):
    raise SystemExit(f"iam_policies.py: {message}")


def arn_of(resources, name):
    kind = resources.get(name, {}).get("Type")
    if kind not in ARNS:
        fail(f"a policy names {name} ({kind}), whose ARN this script cannot build")
    return ARNS[kind] % name


def resolve(value, resources):
    """A policy Resource (string, Fn::GetAtt X.Arn, Fn::Sub with ${X.Arn}) as an ARN template."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        name, attr = att if isinstance(att, list) else str(att).split(".", 1)
        if attr != "Arn":
            fail(f"Fn::GetAtt {name}.{attr} in a policy: only .Arn is understood")
        return arn_of(resources, name)
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        if not isinstance(text, str):
            fail(f"Fn::Sub with variables in a policy: {value}")
        return re.sub(r"\$\{(\w+)\.Arn\}", lambda m: arn_of(resources, m.group(1)), text)
    fail(f"a policy resource this script does not understand: {value}")


def as_list(v):
    return v if isinstance(v, list) else [v]


def policies(template_path):
    template = cfn_yaml.load(str(template_path))
    resources = template["Resources"]
    binaries = {}
    for name, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://bucket/key"
            binaries[name] = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            if not binaries[name]:
                fail(f"{name} has no Metadata.BuildProperties.Binary")
    parameters = {"JwtIssuer": "https://issuer.example", "JwtAudience": "audience"}
    translated = transform(template, parameters, NoManagedPolicies())
    out = {}
    for function, binary in sorted(binaries.items()):
        role = translated["Resources"].get(f"{function}Role")
        if role is None or role["Type"] != "AWS::IAM::Role":
            fail(f"the translation made no role {function}Role")
        props = role["Properties"]
        statements = []
        for policy in props.get("Policies", []):
            for st in as_list(policy["PolicyDocument"]["Statement"]):
                if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
                    fail(f"{function}: only Allow statements with Action and Resource are understood")
                statements.append(
                    {
                        "actions": as_list(st["Action"]),
                        "resources": [resolve(r, resources) for r in as_list(st["Resource"])],
                    }
                )
        out[binary] = {
            "statements": statements,
            "managed": [arn.rsplit("/", 1)[-1] for arn in props.get("ManagedPolicyArns", [])],
        }
    return out


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "infra" / "template.yaml"
    json.dump(policies(path), sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
