//! SNS mobile push.

use async_trait::async_trait;
use aws_sdk_sns::{
    Client,
    operation::{get_endpoint_attributes::GetEndpointAttributesError, publish::PublishError},
};
use thisthat_core::{
    Device, Endpoint, Error, Platform, PushMessage, Result,
    layers::bill,
    ports::{Delivery, Notifier},
};
use tracing::Instrument;

use crate::error;

const SERVICE: &str = "sns";
/// SNS bills every API request (its price key): each is reported when sent, answered or not.
const REQUEST: &str = "sns.request";

/// The SNS platform applications (one per push service) that devices are registered under.
/// Each is the ARN SNS gave the application when it was created with the APNs certificate or
/// key, or the FCM server credentials. Platforms left `None` are refused at registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformApplications {
    /// Apple Push Notification service, production.
    pub apns: Option<String>,
    /// Apple Push Notification service, sandbox (development builds of the app).
    pub apns_sandbox: Option<String>,
    /// Firebase Cloud Messaging (SNS calls it GCM).
    pub fcm: Option<String>,
}

impl PlatformApplications {
    fn arn(&self, platform: Platform) -> Result<&str> {
        let arn = match platform {
            Platform::Apns => &self.apns,
            Platform::ApnsSandbox => &self.apns_sandbox,
            Platform::Fcm => &self.fcm,
            _ => {
                return Err(Error::Unsupported {
                    adapter: "sns",
                    operation: "this push platform",
                });
            }
        };
        arn.as_deref().ok_or_else(|| {
            Error::config(format!(
                "no SNS platform application is configured for {} devices: pass its ARN (sns://?{}=arn:aws:sns:…)",
                platform.as_str(),
                platform.as_str()
            ))
        })
    }
}

/// Push notifications through SNS mobile push: each device is a platform endpoint of the
/// platform application for its push service, and the endpoint ARN is the address thisthat
/// stores. A push is one `Publish` to the endpoint with a payload per push service.
///
/// SNS has no deduplication for endpoint publishes, so the message's idempotency key travels in
/// the payload's data (`idempotency_key`) for the app to drop repeats. A disabled endpoint (the
/// push service said the token is no longer valid) or a deleted one is [`Delivery::Gone`], and
/// the endpoint is deleted so that it does not pile up in the application.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    applications: PlatformApplications,
}

impl SnsNotifier {
    /// A notifier registering devices under `applications`, with the given client.
    pub fn from_client(client: Client, applications: PlatformApplications) -> Self {
        SnsNotifier { client, applications }
    }

    /// A notifier configured from the standard AWS chain.
    pub async fn new(applications: PlatformApplications) -> Self {
        Self::from_client(Client::new(&crate::load_config().await), applications)
    }

    /// The SNS client, for anything thisthat does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The platform applications devices are registered under.
    pub fn applications(&self) -> &PlatformApplications {
        &self.applications
    }

    /// The `Publish` message for `message`: JSON with one payload per push service, as
    /// `MessageStructure=json` requires (`default` is for any other protocol).
    pub fn payload(message: &PushMessage) -> Result<String> {
        // APNs and FCM take at most 4 KB per payload; titles may be configured up to 10,000
        // characters. Cut title and body so that the payload always fits.
        let title = truncate(&message.title, 200);
        let body = truncate(&message.body, 1000);
        let message = &PushMessage {
            title,
            body,
            ..message.clone()
        };
        let data = serde_json::json!({
            "competition": message.competition.to_string(),
            "idempotency_key": message.idempotency_key,
        });
        let fcm = serde_json::json!({
            "notification": {"title": message.title, "body": message.body},
            "data": data,
        });
        let apns = serde_json::json!({
            "aps": {"alert": {"title": message.title, "body": message.body}},
            "competition": message.competition.to_string(),
            "idempotency_key": message.idempotency_key,
        });
        let payload = serde_json::json!({
            "default": message.body,
            "GCM": fcm.to_string(),
            "APNS": apns.to_string(),
            "APNS_SANDBOX": apns.to_string(),
        });
        Ok(payload.to_string())
    }

    /// The endpoint's attributes, or `None` if it no longer exists.
    async fn attributes(&self, arn: &str) -> Result<Option<std::collections::HashMap<String, String>>> {
        bill(REQUEST, 1.0);
        match self.client.get_endpoint_attributes().endpoint_arn(arn).send().await {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetEndpointAttributesError::NotFoundException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(error::map(SERVICE, e)),
        }
    }

    /// Whether the endpoint at `endpoint.address` still belongs to `endpoint`'s user and is
    /// enabled. A token registered again by another user (a phone handed on) has moved its
    /// endpoint to that user: the old registration must neither receive their pushes nor
    /// delete their endpoint. An endpoint without owner data was not made by thisthat and is
    /// taken as it is.
    async fn still_ours(&self, endpoint: &Endpoint) -> Result<Option<bool>> {
        let Some(attributes) = self.attributes(&endpoint.address).await? else {
            return Ok(None);
        };
        let owner_matches = attributes
            .get("CustomUserData")
            .is_none_or(|owner| owner == endpoint.device.user.as_str());
        let enabled = attributes.get("Enabled").is_none_or(|e| e == "true");
        Ok(Some(owner_matches && enabled))
    }

    async fn enable(&self, arn: &str, device: &Device) -> Result<()> {
        bill(REQUEST, 1.0);
        self.client
            .set_endpoint_attributes()
            .endpoint_arn(arn)
            .attributes("Token", &device.token)
            .attributes("Enabled", "true")
            .attributes("CustomUserData", device.user.as_str())
            .send()
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        Ok(())
    }
}

/// The ARN in SNS's "Endpoint ARN already exists with the same Token, but different
/// attributes" refusal: the documented way to find the endpoint of a token registered before.
fn existing_endpoint(message: &str) -> Option<&str> {
    if !message.contains("already exists") {
        return None;
    }
    let start = message.find("arn:aws")?;
    let rest = &message[start..];
    Some(rest.split_whitespace().next()?.trim_end_matches(['.', ',']))
}

/// The first `max` characters of `text`, with an ellipsis if anything was cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn register(&self, device: &Device) -> Result<Endpoint> {
        let application = self.applications.arn(device.platform)?;
        async {
            bill(REQUEST, 1.0);
            let created = self
                .client
                .create_platform_endpoint()
                .platform_application_arn(application)
                .token(&device.token)
                .custom_user_data(device.user.as_str())
                .send()
                .await;
            let arn = match created {
                Ok(output) => output
                    .endpoint_arn
                    .ok_or_else(|| Error::backend(SERVICE, "CreatePlatformEndpoint returned no ARN"))?,
                Err(e) => {
                    // The token has an endpoint already, disabled or registered by another
                    // user: take it over and enable it (AWS's documented registration recipe).
                    let arn = (error::code(&e) == Some("InvalidParameter"))
                        .then(|| {
                            e.as_service_error()
                                .and_then(|s| s.meta().message())
                                .and_then(existing_endpoint)
                        })
                        .flatten()
                        .map(str::to_owned);
                    let Some(arn) = arn else {
                        return Err(error::map(SERVICE, e));
                    };
                    self.enable(&arn, device).await?;
                    arn
                }
            };
            // CreatePlatformEndpoint may hand back an existing endpoint that SNS disabled, or
            // one another user's row still points at: AWS's recipe reads its attributes and
            // fixes token, owner and `Enabled` whenever they are not this registration's.
            match self.attributes(&arn).await? {
                Some(attributes)
                    if attributes.get("Token") == Some(&device.token)
                        && attributes.get("Enabled").map(String::as_str) == Some("true")
                        && attributes.get("CustomUserData").map(String::as_str) == Some(device.user.as_str()) => {}
                _ => self.enable(&arn, device).await?,
            }
            Ok(Endpoint {
                device: device.clone(),
                address: arn,
            })
        }
        .instrument(tracing::debug_span!(
            "sns",
            operation = "register",
            platform = device.platform.as_str()
        ))
        .await
    }

    async fn unregister(&self, endpoint: &Endpoint) -> Result<()> {
        // Another user's registration of the same token owns the endpoint now: leave it.
        if self
            .attributes(&endpoint.address)
            .await?
            .and_then(|a| a.get("CustomUserData").cloned())
            .is_some_and(|owner| owner != endpoint.device.user.as_str())
        {
            return Ok(());
        }
        // DeleteEndpoint is idempotent: a missing endpoint answers success.
        bill(REQUEST, 1.0);
        self.client
            .delete_endpoint()
            .endpoint_arn(&endpoint.address)
            .send()
            .instrument(tracing::debug_span!("sns", operation = "unregister"))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        Ok(())
    }

    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery> {
        match self.still_ours(endpoint).await? {
            None => return Ok(Delivery::Gone),
            Some(false) => {
                // Disabled, or handed on to another user: gone for this registration. Only a
                // disabled endpoint of our own is deleted (unregister checks the owner).
                self.unregister(endpoint).await?;
                return Ok(Delivery::Gone);
            }
            Some(true) => {}
        }
        bill(REQUEST, 1.0);
        let sent = self
            .client
            .publish()
            .target_arn(&endpoint.address)
            .message_structure("json")
            .message(Self::payload(message)?)
            .send()
            .instrument(tracing::debug_span!("sns", operation = "publish", competition = %message.competition))
            .await;
        match sent {
            Ok(_) => {
                // SNS bills the delivery to the push service on top of the request.
                bill("sns.push", 1.0);
                Ok(Delivery::Accepted)
            }
            Err(e) => match e.as_service_error() {
                Some(PublishError::EndpointDisabledException(_)) | Some(PublishError::NotFoundException(_)) => {
                    // The device is gone for good; drop its endpoint so it does not linger.
                    if let Err(e) = self.unregister(endpoint).await {
                        tracing::warn!(error = %e, "could not delete a gone SNS endpoint");
                    }
                    Ok(Delivery::Gone)
                }
                _ => Err(error::map(SERVICE, e)),
            },
        }
    }

    /// Exposes the adapter and its SNS client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_arn_in_the_already_exists_refusal() {
        let message = "Invalid parameter: Token Reason: Endpoint arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/0f1e \
                       already exists with the same Token, but different attributes.";
        assert_eq!(
            existing_endpoint(message),
            Some("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/0f1e")
        );
        assert_eq!(existing_endpoint("Invalid parameter: Token"), None);
    }
}
