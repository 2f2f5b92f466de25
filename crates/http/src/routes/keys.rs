//! Signing keys: this node's public key and the keys it pinned for its peers (ships on the
//! master, the master on a ship); an admin approves or revokes them.

use actix_web::{HttpResponse, web};
use offline_sync_model::PublicKey;
use serde_json::json;

use crate::auth::Role;
use crate::dto::{self, ApproveBody};
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse> {
    let node = state.node()?;
    let (public, peers) = state.run(async move { node.keys().await }).await?;
    let signer = state.info.ship_id.clone().unwrap_or_else(|| "master".into());
    Ok(HttpResponse::Ok().json(dto::data(json!({
        "signer": signer,
        "publicKey": public.to_base64(),
        "peers": peers.into_iter().map(dto::peer_key).collect::<Vec<_>>(),
    }))))
}

/// Trusts a peer: the key given in the body, or the one already seen (pending approval, or
/// revoked earlier).
pub(crate) async fn approve(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    signer: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let signer = signer.into_inner();
    // No body approves the key seen; a body must be the JSON object the API documents.
    let body: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad body: {e}")))?
    };
    let key = body
        .public_key
        .map(|k| PublicKey::parse(&k).map_err(|e| ApiError::bad_request(format!("publicKey: {e}"))))
        .transpose()?;
    set(state, *role, signer, key, true).await
}

/// Refuses a peer's records from now on.
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    signer: web::Path<String>,
) -> Result<HttpResponse> {
    set(state, *role, signer.into_inner(), None, false).await
}

async fn set(
    state: web::Data<AppState>,
    role: Role,
    signer: String,
    key: Option<PublicKey>,
    approve: bool,
) -> Result<HttpResponse> {
    let node = state.node()?;
    let who = signer.clone();
    let k = state
        .run(async move { node.set_key(&who, key, approve).await })
        .await
        .map_err(|e| match e.code() {
            "not_found" => {
                ApiError::not_found(format!("no key seen for {signer:?}; give publicKey to pin one"))
            }
            _ => e,
        })?;
    let action = if approve { "approve-key" } else { "revoke-key" };
    let detail = json!({"publicKey": k.key.to_base64(), "status": k.status.as_str()});
    state
        .audit(role, action, format!("key of {signer}"), detail)
        .await;
    Ok(HttpResponse::Ok().json(dto::data(dto::peer_key(k))))
}
