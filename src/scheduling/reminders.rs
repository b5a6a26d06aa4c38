//! Reminders before scheduled calls and booked appointments: the sweep hands each due reminder to its channel's outbox
//! (e-mail: the `emails` outbox, sent and retried by `emails.rs` like every confirmation; SMS:
//! the `messages` outbox of `messages.rs`), so there is one sending implementation per channel. What a call gets is planned by the core's
//! `reminders` when it is scheduled; the store moves and cancels the rows with the call.

use crate::pipeline::appointments as pipeline_appointments;
use crate::platform::http::{new_id, ApiError};
use crate::platform::zones;
use crate::scheduling::emails::{self, EmailFacts};
use crate::scheduling::outbox::Outbox;
use crate::store::appointments;
use crate::store::messages::Outgoing;
use crate::store::outbox;
use crate::store::reminders::{self, Due, DueAppointment, Handed};
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::carrier::Carrier;
use phone_agent_core::config::Config;
use phone_agent_core::ids::MessageId;
use phone_agent_core::reminders::{idempotency_key, reminder_text, Channel, Subject};
use phone_agent_core::scheduling::email::EmailKind;
use phone_agent_core::sms::carrier_for;
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

/// Due reminders handed over per scheduler run.
const BATCH: i64 = 50;

/// The reminders' hand-over to the email and text-message outboxes. Run before the email
/// sweep, so a reminder goes out in the run that finds it due.
pub struct Reminders;

/// A due reminder of a call or of an appointment.
pub enum Reminder {
    Call(Due),
    Appointment(DueAppointment),
}

impl Outbox for Reminders {
    type Item = Reminder;
    const ATTEMPT_FAILED: &'static str = "reminder hand-over";

    async fn due(db: &D1Database, now: i64) -> Result<Vec<Reminder>, ApiError> {
        let calls = reminders::due_unscoped(db, now, BATCH).await?;
        let appointments = reminders::due_appointments_unscoped(db, now, BATCH).await?;
        let calls = calls.into_iter().map(Reminder::Call);
        Ok(calls
            .chain(appointments.into_iter().map(Reminder::Appointment))
            .collect())
    }

    async fn attempt(
        env: &Env,
        db: &D1Database,
        config: &Config,
        reminder: &Reminder,
        now: i64,
    ) -> Result<(), ApiError> {
        match reminder {
            Reminder::Call(r) => hand_over(db, config, r, now).await,
            Reminder::Appointment(r) => hand_over_appointment(env, db, config, r, now).await,
        }
    }

    fn ids(reminder: &Reminder) -> Value {
        match reminder {
            Reminder::Call(r) => json!({"reminder_id": r.id, "call_id": r.call_id}),
            Reminder::Appointment(r) => {
                json!({"reminder_id": r.id, "appointment_id": r.appointment_id})
            }
        }
    }

    async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
        Ok(outbox::next_due_unscoped(db, &reminders::QUEUE).await?)
    }
}

/// Hands appointment reminder `r` to its channel's outbox: the appointment's invitation
/// wording as a `Reminder` email to the address it was booked with, or a text to the caller's
/// number from the number of the call that booked it (else the default caller id). One the
/// appointment cannot be reached by is skipped.
async fn hand_over_appointment(
    env: &Env,
    db: &D1Database,
    config: &Config,
    r: &DueAppointment,
    now: i64,
) -> Result<(), ApiError> {
    let who = (Subject::Appointment, &r.id);
    let tenant = Tenant::new(env.d1("DB")?, r.tenant_id.clone());
    let Some(appointment) = appointments::get(&tenant, r.appointment_id.as_str()).await? else {
        return Ok(reminders::hand_over(db, &r.tenant_id, who, None, now).await?);
    };
    let before = u32::try_from(r.before_minutes).unwrap_or(u32::MAX);
    let agent_name = r
        .agent_name
        .clone()
        .unwrap_or_else(|| appointment.agent_id.to_string());
    match Channel::parse(&r.channel) {
        Some(Channel::Email) => {
            let composed = pipeline_appointments::compose(
                config,
                &tenant,
                &appointment,
                &agent_name,
                EmailKind::Reminder,
            )?;
            let Some(mut email) = composed else {
                return Ok(reminders::hand_over(db, &r.tenant_id, who, None, now).await?);
            };
            email.idempotency_key = idempotency_key(
                r.appointment_id.as_str(),
                Channel::Email,
                before,
                r.start_at,
            );
            email.now = now;
            Ok(
                reminders::hand_over(db, &r.tenant_id, who, Some(Handed::Email(&email)), now)
                    .await?,
            )
        }
        Some(Channel::Sms) => {
            let wanted = r
                .provider
                .as_deref()
                .and_then(Carrier::parse)
                .filter(|c| c.texts());
            let carrier = carrier_for(wanted, config).or_else(|_| carrier_for(None, config));
            let from = r
                .our_number
                .clone()
                .or_else(|| config.default_from_number.clone());
            let (Some(from), Some(to), Ok(carrier)) =
                (from, appointment.caller_number.as_deref(), carrier)
            else {
                return Ok(reminders::hand_over(db, &r.tenant_id, who, None, now).await?);
            };
            let start = DateTime::from_timestamp_millis(r.start_at).unwrap_or_default();
            let body = reminder_text(
                Subject::Appointment,
                &agent_name,
                start,
                zones::zone(Some(&appointment.time_zone)).as_ref(),
            );
            let id = new_id::<MessageId>()?;
            let base_url = r
                .base_url
                .clone()
                .or_else(|| config.public_base_url.clone());
            let text = Outgoing {
                id: &id,
                kind: "reminder",
                provider: carrier.as_str(),
                from: &from,
                to,
                body: &body,
                call_id: None,
                base_url: base_url.as_deref().unwrap_or_default(),
                now,
            };
            Ok(reminders::hand_over(db, &r.tenant_id, who, Some(Handed::Text(&text)), now).await?)
        }
        None => Ok(reminders::hand_over(db, &r.tenant_id, who, None, now).await?),
    }
}

/// Hands reminder `r` to its channel's outbox: an email to the contact, or a text to the number
/// called from the call's caller id (through the call's carrier when it texts, else the
/// configured one). A reminder its call cannot be reached by is skipped.
async fn hand_over(db: &D1Database, config: &Config, r: &Due, now: i64) -> Result<(), ApiError> {
    let before = u32::try_from(r.before_minutes).unwrap_or(u32::MAX);
    let agent_name = r.agent_name.as_deref().unwrap_or("Your agent");
    match Channel::parse(&r.channel) {
        Some(Channel::Email) if r.contact_email.is_some() => {
            let facts = EmailFacts {
                tenant_id: r.tenant_id.as_str(),
                call_id: r.call_id.as_str(),
                to_email: r.contact_email.as_deref().unwrap_or_default(),
                to_name: r.contact_name.as_deref(),
                agent_name,
                phone_number: &r.to_number,
                start_at: r.start_at,
                time_zone: r.time_zone.as_deref(),
            };
            let sequence = u32::try_from(r.ics_sequence).unwrap_or(u32::MAX);
            let mut email = emails::compose(config, &facts, EmailKind::Reminder, sequence, now)?;
            email.idempotency_key =
                idempotency_key(r.call_id.as_str(), Channel::Email, before, r.start_at);
            Ok(reminders::hand_over(
                db,
                &r.tenant_id,
                (Subject::Call, &r.id),
                Some(Handed::Email(&email)),
                now,
            )
            .await?)
        }
        Some(Channel::Sms) => {
            let wanted = Carrier::parse(&r.provider).filter(|c| c.texts());
            let carrier = carrier_for(wanted, config).or_else(|_| carrier_for(None, config));
            let (Some(from), Ok(carrier)) = (r.from_number.as_deref(), carrier) else {
                return Ok(reminders::hand_over(
                    db,
                    &r.tenant_id,
                    (Subject::Call, &r.id),
                    None,
                    now,
                )
                .await?);
            };
            let start = DateTime::from_timestamp_millis(r.start_at).unwrap_or_default();
            let body = reminder_text(
                Subject::Call,
                agent_name,
                start,
                zones::zone(r.time_zone.as_deref()).as_ref(),
            );
            let id = new_id::<MessageId>()?;
            let base_url = r
                .base_url
                .clone()
                .or_else(|| config.public_base_url.clone());
            let text = Outgoing {
                id: &id,
                kind: "reminder",
                provider: carrier.as_str(),
                from,
                to: &r.to_number,
                body: &body,
                call_id: Some(r.call_id.as_str()),
                base_url: base_url.as_deref().unwrap_or_default(),
                now,
            };
            Ok(reminders::hand_over(
                db,
                &r.tenant_id,
                (Subject::Call, &r.id),
                Some(Handed::Text(&text)),
                now,
            )
            .await?)
        }
        _ => Ok(reminders::hand_over(db, &r.tenant_id, (Subject::Call, &r.id), None, now).await?),
    }
}
