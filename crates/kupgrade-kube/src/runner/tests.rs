use super::*;

fn runner() -> PodRunner {
    // A client that is never used: pod_for is pure.
    let (svc, _handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    PodRunner::new(Client::new(svc, "default")).namespace("ops")
}

/// The default image is named by digest, and a movable tag is refused unless accepted
/// explicitly (the pods run privileged in the node's PID namespace).
#[tokio::test]
async fn the_image_is_pinned_by_digest_or_explicitly_unpinned() {
    let node: NodeName = "w-1".parse().unwrap();
    let spec = CommandSpec::new("true");
    assert!(
        PodRunner::is_pinned(PodRunner::DEFAULT_IMAGE),
        "{}",
        PodRunner::DEFAULT_IMAGE
    );
    let pod = runner().pod_for(&node, &spec).unwrap();
    assert_eq!(
        pod.spec.unwrap().containers[0].image.as_deref(),
        Some(PodRunner::DEFAULT_IMAGE)
    );
    for tag in [
        "docker.io/library/busybox:1.36",
        "busybox",
        "busybox@sha256:abc",
        "busybox@sha256:73AAF090F3D85AA34EE199857F03FA3A95C8EDE2FFD4CC2CDB5B94E566B11662",
        "@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662",
    ] {
        let err = runner().image(tag).pod_for(&node, &spec).unwrap_err();
        let RunnerError::Invalid { message, .. } = &err else {
            panic!("expected Invalid for {tag}, got {err:?}")
        };
        assert!(message.contains("is not named by digest"), "{message}");
        let pod = runner()
            .image(tag)
            .allow_unpinned_image()
            .pod_for(&node, &spec)
            .unwrap();
        assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some(tag));
    }
    let pinned = "registry.example:5000/tools/util-linux@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert!(runner().image(pinned).pod_for(&node, &spec).is_ok());
}

#[tokio::test]
async fn pod_is_privileged_pinned_tolerant_and_quotes_the_command() {
    let node: NodeName = "cp-1.example".parse().unwrap();
    let spec = CommandSpec::new("echo")
        .arg("it's; rm -rf /")
        .sudo()
        .env("A", "b c")
        .timeout(Duration::from_secs(60));
    let pod = runner().pod_for(&node, &spec).unwrap();
    let s = pod.spec.as_ref().unwrap();
    assert_eq!(
        pod.metadata.generate_name.as_deref(),
        Some("kupgrade-cp-1-example-")
    );
    assert_eq!(pod.metadata.namespace.as_deref(), Some("ops"));
    assert_eq!(s.node_name.as_deref(), Some("cp-1.example"));
    assert_eq!(s.host_pid, Some(true));
    assert_eq!(s.restart_policy.as_deref(), Some("Never"));
    assert_eq!(s.active_deadline_seconds, Some(360));
    let tol = s.tolerations.as_ref().unwrap();
    assert_eq!(tol.len(), 1);
    assert_eq!(tol[0].operator.as_deref(), Some("Exists"));
    assert_eq!(tol[0].key, None);
    assert_eq!(tol[0].effect, None);
    let c = &s.containers[0];
    assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    assert_eq!(
        c.command.as_ref().unwrap(),
        &[
            "nsenter",
            "-t",
            "1",
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "--",
            "sh",
            "-c",
            r"env 'A=b c' echo 'it'\''s; rm -rf /'"
        ]
    );
}

/// Runs the host line of `pod` with the local `sh`, as `nsenter ... sh -c LINE` would.
/// The shell line the pod's container runs (`... sh -c LINE`).
fn shell_line(pod: &Pod) -> &str {
    let command = pod.spec.as_ref().unwrap().containers[0]
        .command
        .as_ref()
        .unwrap();
    assert_eq!(command[command.len() - 3..command.len() - 1], ["sh", "-c"]);
    command.last().unwrap()
}

fn run_line(pod: &Pod) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(shell_line(pod))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sh")
}

fn tricky_input() -> Vec<u8> {
    let mut input = b"it's \"quoted\"; $(touch /nonexistent/x) `id`\n\nline 3\\\n\x00\xff\xfe not utf-8 \xe2\x9c\x93".to_vec();
    input.extend(0..=255u8);
    input
}

#[tokio::test]
async fn stdin_reaches_the_command_byte_for_byte_through_the_host_shell() {
    let node: NodeName = "w-1".parse().unwrap();
    let input = tricky_input();
    let spec = CommandSpec::new("cat").stdin(input.clone()).sudo();
    let pod = runner().pod_for(&node, &spec).unwrap();
    let line = shell_line(&pod).to_string();
    assert!(line.is_ascii(), "{line}");
    assert!(!line.contains("sudo"), "{line}");
    assert!(line.ends_with("| base64 -d | {\ncat\n}"), "{line}");
    let out = run_line(&pod);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, input);
    assert!(out.stderr.is_empty(), "{out:?}");

    // A script gets the input as a whole (not only its first command), keeps its exit
    // code and its environment.
    let spec = CommandSpec::shell("read -r first; printf '%s|%s|' \"$first\" \"$A\"; cat; exit 4")
        .env("A", "b 'c'")
        .stdin(input.clone());
    let out = run_line(&runner().pod_for(&node, &spec).unwrap());
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let first_line_end = input.iter().position(|&b| b == b'\n').unwrap();
    let mut expected = input[..first_line_end].to_vec();
    expected.extend_from_slice(b"|b 'c'|");
    expected.extend_from_slice(&input[first_line_end + 1..]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(out.stdout, expected);

    // Empty input is end of file at once.
    let spec = CommandSpec::shell("wc -c | tr -d ' '").stdin(Vec::new());
    let out = run_line(&runner().pod_for(&node, &spec).unwrap());
    assert_eq!(out.stdout, b"0\n");
}

#[tokio::test]
async fn stdin_up_to_the_limit_fits_one_argument_and_more_is_refused() {
    let node: NodeName = "w-1".parse().unwrap();
    let input: Vec<u8> = (0..PodRunner::MAX_STDIN)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let spec = CommandSpec::shell("wc -c | tr -d ' '").stdin(input);
    let pod = runner().pod_for(&node, &spec).unwrap();
    let line = shell_line(&pod).len();
    assert!(line <= PodRunner::MAX_LINE, "{line}");
    let out = run_line(&pod);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", PodRunner::MAX_STDIN)
    );

    let err = runner()
        .pod_for(
            &node,
            &CommandSpec::new("cat").stdin(vec![b'x'; PodRunner::MAX_STDIN + 1]),
        )
        .unwrap_err();
    assert!(matches!(err, RunnerError::Unsupported { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("65537 bytes of standard input"), "{msg}");
    assert!(msg.contains("the limit is 65536 bytes"), "{msg}");

    let err = runner()
        .pod_for(
            &node,
            &CommandSpec::new("echo").arg("y".repeat(PodRunner::MAX_LINE)),
        )
        .unwrap_err();
    assert!(matches!(err, RunnerError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("131071 bytes"), "{err}");
}

#[tokio::test]
async fn a_node_without_base64_is_told_so() {
    let node: NodeName = "w-1".parse().unwrap();
    let pod = runner()
        .pod_for(&node, &CommandSpec::new("cat").stdin("x"))
        .unwrap();
    let line = shell_line(&pod).to_string();
    // `command` is a shell builtin; an empty PATH hides every program, base64 included.
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&line)
        .env("PATH", "")
        .output()
        .expect("run sh");
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("base64 not found on the node"),
        "{out:?}"
    );
}
