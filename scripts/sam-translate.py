#!/usr/bin/env python3
"""Transforms a SAM template into the CloudFormation that `sam deploy` hands to
CloudFormation, with the aws-sam-translator the pinned SAM CLI ships, and prints it as
JSON: the differential tests compare chat-local's reading of both forms.

Usage: sam-translate.py TEMPLATE [Name=Value ...]   (parameter overrides)

Local CodeUris become placeholder S3 URIs, as `sam validate` does (the translator takes
no local paths); each function's Metadata is carried over to the transformed function,
as the build metadata chat-local finds its binary by.
"""
import json
import sys

import boto3
from samcli.yamlhelper import yaml_parse
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator


def main() -> int:
    path, *overrides = sys.argv[1:]
    with open(path) as f:
        template = yaml_parse(f.read())
    parameters = dict(item.split("=", 1) for item in overrides)
    # The pseudo parameters the local stack uses (chat-local's region and account).
    parameters.setdefault("AWS::Region", "us-east-1")
    parameters.setdefault("AWS::AccountId", "123456789012")
    metadata = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            code_uri = properties.get("CodeUri", ".")
            properties["CodeUri"] = f"s3://local-build/{code_uri}"
            if "Metadata" in resource:
                metadata[logical_id] = resource["Metadata"]
    session = boto3.session.Session(region_name=parameters["AWS::Region"])
    translator = Translator(
        managed_policy_map=None, sam_parser=Parser(), plugins=[], boto_session=session
    )
    try:
        output = translator.translate(
            sam_template=template,
            parameter_values=parameters,
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as error:
        causes = " ".join(str(cause) for cause in error.causes)
        print(f"{error} {causes}", file=sys.stderr)
        return 1
    for logical_id, meta in metadata.items():
        resource = output["Resources"].get(logical_id)
        if resource is not None:
            resource["Metadata"] = meta
    json.dump(output, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
