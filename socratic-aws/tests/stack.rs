//! A stack's outputs read through the SDK from a local stub of CloudFormation's query API,
//! answering with the response shapes of the `DescribeStacks` API reference: outputs found, a
//! missing stack, an output the stack lacks, and a failing service, each a typed error
//! without the SDK's text.

#![cfg(feature = "cloudformation")]
#![allow(clippy::unwrap_used)]

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use socratic_aws::{StackError, stack_output, stack_outputs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `DescribeStacks`' answer for a stack with two outputs (the API reference's example shape).
const FOUND: &str = r#"<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <DescribeStacksResult>
    <Stacks>
      <member>
        <StackName>SocraticBenchmarks</StackName>
        <StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/SocraticBenchmarks/aaf549a0-a413-11df-adb3-5081b3858e83</StackId>
        <CreationTime>2026-11-30T06:00:00Z</CreationTime>
        <StackStatus>CREATE_COMPLETE</StackStatus>
        <DisableRollback>false</DisableRollback>
        <Outputs>
          <member>
            <OutputKey>TableName</OutputKey>
            <OutputValue>SocraticBenchmarks-TableCD117FA1-1BX9</OutputValue>
          </member>
          <member>
            <OutputKey>BucketName</OutputKey>
            <OutputValue>socraticbenchmarks-bucket83908e77-kq2</OutputValue>
          </member>
        </Outputs>
      </member>
    </Stacks>
  </DescribeStacksResult>
  <ResponseMetadata>
    <RequestId>b9b4b068-3a41-11e5-94eb-example</RequestId>
  </ResponseMetadata>
</DescribeStacksResponse>"#;

/// The query API's error answer for a stack that does not exist (HTTP 400).
const MISSING: &str = r#"<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <Error>
    <Type>Sender</Type>
    <Code>ValidationError</Code>
    <Message>Stack with id NoSuchStack does not exist</Message>
  </Error>
  <RequestId>5ccc7dcd-744c-11e5-be70-example</RequestId>
</ErrorResponse>"#;

/// A stub answering `DescribeStacks` by the stack named in the form body; its endpoint.
async fn stub() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read the headers, then the body its Content-Length announces.
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let (status, body) = if text.contains("StackName=SocraticBenchmarks") {
                    ("200 OK", FOUND)
                } else if text.contains("StackName=Broken") {
                    ("500 Internal Server Error", "")
                } else {
                    ("400 Bad Request", MISSING)
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

#[tokio::test]
async fn a_stacks_outputs_name_its_table_and_bucket() {
    let sdk = sdk(&stub().await).await;
    let outputs = stack_outputs(&sdk, "SocraticBenchmarks").await.unwrap();
    assert_eq!(
        stack_output(&outputs, "SocraticBenchmarks", "TableName").unwrap(),
        "SocraticBenchmarks-TableCD117FA1-1BX9"
    );
    assert_eq!(
        stack_output(&outputs, "SocraticBenchmarks", "BucketName").unwrap(),
        "socraticbenchmarks-bucket83908e77-kq2"
    );
    let lacking = stack_output(&outputs, "SocraticBenchmarks", "ApiUrl").unwrap_err();
    assert_eq!(
        lacking,
        StackError::MissingOutput {
            name: "SocraticBenchmarks".to_owned(),
            output: "ApiUrl".to_owned()
        }
    );
    assert_eq!(
        lacking.to_string(),
        "stack SocraticBenchmarks has no output ApiUrl"
    );
}

#[tokio::test]
async fn a_missing_stack_and_a_failing_service_are_typed_errors_without_the_sdks_text() {
    let sdk = sdk(&stub().await).await;
    let missing = stack_outputs(&sdk, "NoSuchStack").await.unwrap_err();
    assert_eq!(
        missing,
        StackError::NotFound {
            name: "NoSuchStack".to_owned()
        }
    );
    assert!(
        missing
            .to_string()
            .starts_with("stack NoSuchStack does not exist")
    );
    let broken = stack_outputs(&sdk, "Broken").await.unwrap_err();
    let StackError::Unavailable { message, .. } = &broken else {
        panic!("{broken:?}");
    };
    assert_eq!(
        message,
        "CloudFormation answered HTTP 500 without an error code"
    );
    let unreachable = stack_outputs(&self::sdk("http://127.0.0.1:9").await, "SocraticBenchmarks")
        .await
        .unwrap_err();
    assert!(
        matches!(&unreachable, StackError::Unavailable { message, .. } if message == "could not connect to CloudFormation"),
        "{unreachable:?}"
    );
}
