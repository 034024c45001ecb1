//! `fleetload ctl`: one command to a running coordinator.

use super::*;

/// `fleetload ctl`: one command to a running coordinator.
pub(super) async fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    use fleetload_common::wire::{command_request, reply_from, Command};
    let endpoint = if args.coordinator.contains("://") {
        args.coordinator.clone()
    } else {
        format!("http://{}", args.coordinator)
    };
    // Dial exactly as a worker does: the same TLS, client certificate and token.
    let security = client_security(&args.channel)?;
    let channel = security
        .endpoint(&endpoint)
        .map_err(|e| anyhow::anyhow!("--coordinator {}: {e}", args.coordinator))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the coordinator at {endpoint}: {}",
                fleetload_worker::security::explain_connect_error(&e, &endpoint)
            )
        })?;
    let mut client = security.client(channel);
    let command = match &args.action {
        CtlAction::Status => Command::Status,
        CtlAction::SetRate { value } => Command::SetRate(*value),
        CtlAction::Pause => Command::Pause,
        CtlAction::Resume => Command::Resume,
        CtlAction::Stop { reason } => Command::Stop(reason.clone()),
    };
    let reply = client
        .command(command_request(&command))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => {
                anyhow::anyhow!("{}", s.message())
            }
            // Unavailable too: a connection that died before the call (a coordinator
            // that wanted TLS or a client certificate) comes back as Unavailable, and
            // the explanation keeps a coordinator's own words when it is not that.
            _ => anyhow::anyhow!("{}", security.explain_stream_error(&s, &endpoint)),
        })?
        .into_inner();
    let reply = reply_from(reply)
        .map_err(|e| anyhow::anyhow!("the coordinator's answer is not understood: {e}"))?;
    if let Some(status) = &reply.status {
        println!("{}", serde_json::to_string_pretty(status)?);
    } else {
        println!("{}", reply.message);
    }
    Ok(if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
