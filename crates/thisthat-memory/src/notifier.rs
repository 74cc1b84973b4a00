use std::{collections::HashSet, sync::Mutex};

use async_trait::async_trait;
use thisthat_core::{
    Device, Endpoint, PushMessage, Result,
    ports::{Delivery, Notifier},
};

#[derive(Debug, Default)]
struct State {
    registered: HashSet<String>,
    gone: HashSet<String>,
    sent: Vec<(Endpoint, PushMessage)>,
}

/// Records every push instead of sending it. Tests read [`MemoryNotifier::sent`] and make a
/// device's token go stale with [`MemoryNotifier::expire`].
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    state: Mutex<State>,
}

impl MemoryNotifier {
    /// A notifier with no devices.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every push accepted so far, in order.
    pub fn sent(&self) -> Vec<(Endpoint, PushMessage)> {
        self.lock().sent.clone()
    }

    /// The pushes accepted for one endpoint.
    pub fn sent_to(&self, endpoint: &Endpoint) -> Vec<PushMessage> {
        self.lock()
            .sent
            .iter()
            .filter(|(e, _)| e.address == endpoint.address)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Makes the endpoint's token stale, as when the app is uninstalled: later sends report
    /// [`Delivery::Gone`].
    pub fn expire(&self, endpoint: &Endpoint) {
        self.lock().gone.insert(endpoint.address.clone());
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn register(&self, device: &Device) -> Result<Endpoint> {
        let address = format!("memory:{}:{}", device.platform.as_str(), device.token);
        let mut state = self.lock();
        state.gone.remove(&address);
        state.registered.insert(address.clone());
        Ok(Endpoint {
            device: device.clone(),
            address,
        })
    }

    async fn unregister(&self, endpoint: &Endpoint) -> Result<()> {
        self.lock().registered.remove(&endpoint.address);
        Ok(())
    }

    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery> {
        let mut state = self.lock();
        if state.gone.contains(&endpoint.address) || !state.registered.contains(&endpoint.address) {
            return Ok(Delivery::Gone);
        }
        state.sent.push((endpoint.clone(), message.clone()));
        Ok(Delivery::Accepted)
    }

    /// Exposes the adapter itself, for its inspection methods.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }
}
