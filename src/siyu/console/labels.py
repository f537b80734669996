"""Readable labels for what the console would otherwise show as code: audit actions and job kinds.

Each is an English message id (translated where shown); the raw value stays available on hover.
A label is looked up whole; families written as `<object>.<verb>` by one audit helper (content,
products, wording entries, ...) are composed from the object's and the verb's labels. The tests
check that every audit action written in the code and every registered job has a label."""

from __future__ import annotations

from collections.abc import Callable

from siyu.console.i18n import N_

AUDIT_ACTIONS: dict[str, str] = {
    "analytics.spend_added": N_("Acquisition spend entered"),
    "analytics.spend_deleted": N_("Acquisition spend deleted"),
    "corp.created": N_("Corp created"),
    "department.created": N_("Department created"),
    "staff.created": N_("Staff created"),
    "staff.updated": N_("Staff updated"),
    "staff.roles_changed": N_("Roles changed"),
    "staff.password_set": N_("Password set"),
    "login.succeeded": N_("Login succeeded"),
    "login.failed": N_("Login failed"),
    "login.refused_locked": N_("Login refused: account locked"),
    "api_key.created": N_("API key created"),
    "api_key.revoked": N_("API key revoked"),
    "job.retried": N_("Job retried"),
    "acquisition.channel_code_created": N_("Channel code created"),
    "acquisition.follow_up_done": N_("Follow-up done"),
    "acquisition.gated_created": N_("Verified community created"),
    "acquisition.hook_removed": N_("Verification hook removed"),
    "acquisition.hook_saved": N_("Verification hook saved"),
    "acquisition.keyword_rule_created": N_("Keyword rule created"),
    "acquisition.keyword_task_dismissed": N_("Keyword task dismissed"),
    "acquisition.keyword_task_sent": N_("Keyword task sent"),
    "acquisition.lead_called": N_("Lead called"),
    "acquisition.lead_code_requested": N_("Lead's code requested"),
    "acquisition.lead_list_commit_requested": N_("Lead list import requested"),
    "acquisition.lead_list_committed": N_("Lead list imported"),
    "acquisition.lead_list_discarded": N_("Lead list discarded"),
    "acquisition.lead_list_uploaded": N_("Lead list uploaded"),
    "acquisition.lead_phone_unmasked": N_("Lead's phone shown in clear"),
    "acquisition.lead_script_changed": N_("Call script changed"),
    "acquisition.leads_exported": N_("Leads exported"),
    "acquisition.persona_changed": N_("Persona changed"),
    "acquisition.persona_created": N_("Persona created"),
    "acquisition.sms_blocked": N_("SMS blocked"),
    "acquisition.welcome_flow_changed": N_("Welcome flow changed"),
    "acquisition.welcome_variant_added": N_("Welcome variant added"),
    "acquisition.welcome_variant_changed": N_("Welcome variant changed"),
    "acquisition.welcome_variant_edited": N_("Welcome variant edited"),
    "archive_alert.evidence_read": N_("Alert evidence read"),
    "archive_alert.phrase_retired": N_("Alert phrase retired"),
    "archive_sdk.configured": N_("Chat archive SDK configured"),
    "compliance.handover_created": N_("Handover created"),
    "compliance.handover_escalated": N_("Handover item escalated"),
    "compliance.handover_retried": N_("Handover item retried"),
    "consent.granted": N_("Consent recorded"),
    "content.requirements_changed": N_("Approval requirements changed"),
    "customer.linked": N_("Customer linked to the firm's record"),
    "customer.product_recommended": N_("Product recommended"),
    "customer.tag_added": N_("Customer tag added"),
    "customer.unmasked": N_("Customer shown in clear"),
    "customer_tags.sync_requested": N_("Tag sync requested"),
    "customers.exported": N_("Customers exported"),
    "gated_community.join_way_linked": N_("Join way linked to a verified community"),
    "group.sync_requested": N_("Group sync requested"),
    "group.updated": N_("Group updated"),
    "group_join_way.created": N_("Join way created"),
    "group_join_way.deleted": N_("Join way deleted"),
    "group_join_way.exhausted": N_("Join way full"),
    "group_join_way.rotated": N_("Join way rolled over"),
    "group_set.created": N_("Group set created"),
    "group_set.deleted": N_("Group set deleted"),
    "group_set.groups_added": N_("Groups added to a set"),
    "group_set.joining_configured": N_("Joining configured"),
    "group_set.updated": N_("Group set updated"),
    "group_set.welcome_pushed": N_("Group welcome pushed"),
    "group_set.welcome_saved": N_("Group welcome saved"),
    "group_task.done": N_("Group task done"),
    "moderation_terms.exported": N_("Red-line list exported"),
    "moderation_terms.imported": N_("Red-line list imported"),
    "privacy_notice.published": N_("Privacy notice published"),
    "quality_report.exported": N_("Service quality exported"),
    "quality_settings.updated": N_("Service quality settings changed"),
    "recommendations.exported": N_("Recommendations exported"),
    "retention.changed": N_("Retention period changed"),
    "retention.purged": N_("Expired records purged"),
    "risk_assessment.recorded": N_("Risk assessment recorded"),
    "risk_disclosure.reset": N_("Risk disclosure reset"),
    "risk_disclosure.set": N_("Risk disclosure set"),
    "broadcast.cancelled": N_("Broadcast cancelled"),
    "broadcast.created": N_("Broadcast created"),
    "broadcast.scheduled": N_("Broadcast scheduled"),
    "delivery.holdout_redrawn": N_("Control group drawn again"),
    "delivery.policy_changed": N_("Delivery policy changed"),
    "sop.journey_created": N_("Customer SOP created"),
    "sop.settings_changed": N_("SOP settings changed"),
    "sop.slot_removed": N_("SOP slot removed"),
    "sop.slots_added": N_("SOP slots added"),
    "sop.step_added": N_("SOP step added"),
    "sop.template_applied": N_("SOP template applied"),
    "sop.template_created": N_("SOP template created"),
    "sop.template_removed": N_("SOP template removed"),
    "webhook_delivery.redelivered": N_("Webhook redelivered"),
    "segment.create": N_("Segment created"),
    "segment.delete": N_("Segment deleted"),
    "segment.update": N_("Segment changed"),
    "webhook_endpoint.created": N_("Webhook endpoint created"),
    "webhook_endpoint.enabled": N_("Webhook endpoint switched"),
    "wecom.connection_changed": N_("WeCom connection changed"),
    "wecom.welcome_changed": N_("Welcome message changed"),
    "wording.lexicons_set": N_("Firm lexicons set"),
    "wording_dictionary.exported": N_("Wording dictionary exported"),
    "wording_dictionary.imported": N_("Wording dictionary imported"),
    "wording_draft.discarded": N_("Wording draft discarded"),
    "wording_draft.published": N_("Wording draft published"),
    "wording_entry.seeded": N_("Wording dictionary seeded"),
    "wording_labelled.added_from_alert": N_("Labelled message added from an alert"),
    "wording_labelled.imported": N_("Labelled messages imported"),
    "wording_labelled.removed": N_("Labelled message removed"),
}

# Families `<object>.<verb>` written by one helper with the verb as a variable.
AUDIT_OBJECTS: dict[str, str] = {
    "content": N_("Content"),
    "archive_alert": N_("Chat alert"),
    "product": N_("Product"),
    "wording_entry": N_("Wording entry"),
    "moderation_term": N_("Red-line term"),
    "moderation_hit": N_("Red-line alert"),
    "dsr": N_("Personal data request"),
}
AUDIT_VERBS: dict[str, str] = {
    "created": N_("created"), "edited": N_("edited"), "submitted": N_("submitted"), "approved": N_("approved"),
    "auto_approved": N_("approved automatically"), "rejected": N_("rejected"), "withdrawn": N_("withdrawn"),
    "commented": N_("commented"), "assigned": N_("assigned"), "resolved": N_("resolved"),
    "false_positive": N_("marked a false positive"), "activated": N_("switched on"),
    "deactivated": N_("switched off"), "reactivated": N_("switched on again"), "added": N_("added"),
    "warned": N_("warned"), "removed": N_("removed"), "dismissed": N_("not a violation"),
    "requested": N_("registered"), "refused": N_("refused"), "started": N_("started"), "erased": N_("erased"),
    "done": N_("done"), "downloaded": N_("downloaded"),
}


def audit_action_label(action: str, gettext: Callable[[str], str]) -> str:
    """The readable label of an audit action, or the action itself when none is known."""
    whole = AUDIT_ACTIONS.get(action)
    if whole is not None:
        return gettext(whole)
    obj, _, verb = action.rpartition(".")
    if obj in AUDIT_OBJECTS and verb in AUDIT_VERBS:
        return f"{gettext(AUDIT_OBJECTS[obj])} · {gettext(AUDIT_VERBS[verb])}"
    return action


JOB_KINDS: dict[str, str] = {
    "acquisition.commit_lead_list": N_("Import a lead list"),
    "audiences.count_all": N_("Daily segment counts"),
    "audiences.count_corp": N_("Count a corp's segments"),
    "acquisition.daily_codes": N_("Daily channel code check"),
    "acquisition.expire_code": N_("Expire a channel code"),
    "acquisition.keyword_task_send": N_("Send a keyword task"),
    "acquisition.lead_code": N_("Make a lead's code"),
    "acquisition.parse_lead_list": N_("Read a lead list"),
    "acquisition.register_code": N_("Register a channel code at WeCom"),
    "acquisition.sync_code_users": N_("Update a code's advisors"),
    "analytics.backfill": N_("Backfill the analytics events"),
    "communities.corp_health": N_("Group health of a corp"),
    "communities.daily_health": N_("Daily group health"),
    "communities.daily_sync": N_("Daily group sync"),
    "communities.fetch_group": N_("Read a group from WeCom"),
    "communities.group_joined_set": N_("Record a join to a group set"),
    "communities.group_welcome_push": N_("Push a group welcome"),
    "communities.group_welcome_sweep": N_("Check group welcomes"),
    "communities.join_way_keep": N_("Keep join ways open"),
    "communities.sync_corp": N_("Sync a corp's groups"),
    "compliance.archive_poll": N_("Read the chat archive"),
    "compliance.archive_poll_all": N_("Read every corp's chat archive"),
    "compliance.handover_poll": N_("Ask WeCom for handover results"),
    "compliance.handover_run": N_("Run a handover"),
    "compliance.quality_daily": N_("Daily service quality"),
    "compliance.quality_daily_all": N_("Daily service quality of every corp"),
    "compliance.quality_timeouts": N_("Overdue replies"),
    "compliance.quality_waits": N_("Replies waited for"),
    "compliance.retention_purge": N_("Purge expired records"),
    "compliance.retention_purge_all": N_("Purge expired records of every corp"),
    "customers.daily_tag_sync": N_("Daily tag sync"),
    "customers.fetch_profile": N_("Read a customer's profile"),
    "customers.mark_tag": N_("Tag a customer at WeCom"),
    "customers.search_backfill": N_("Index customers for search"),
    "customers.sync_corp_tags": N_("Sync the corp's tags"),
    "integration.deliver_webhook": N_("Deliver a webhook"),
    "jobs.audit_anchor": N_("Anchor the audit log"),
    "jobs.noop": N_("Test job"),
    "jobs.prune": N_("Prune finished jobs"),
    "broadcasts.check": N_("Read a broadcast's results"),
    "broadcasts.remind": N_("Remind an advisor of a broadcast"),
    "broadcasts.send": N_("Send an advisor's broadcast"),
    "broadcasts.start": N_("Start a broadcast"),
    "sop.check": N_("Check SOP slots"),
    "sop.notify": N_("Remind advisors of SOP tasks"),
    "sop.plan": N_("Plan SOP slots"),
    "sop.send": N_("Send an SOP slot"),
    "sop.step_check": N_("Check customer SOP steps"),
    "sop.step_send": N_("Send a customer SOP step"),
    "wecom.process_event": N_("Process a WeCom event"),
}

# Jobs of a published event (`event:<event>:<subscriber>`; `event:<event>:together:<queue>` runs the
# event's database-only subscribers together): labelled "<event> → <what the subscriber does>".
EVENTS: dict[str, str] = {
    "chat.customer_message": N_("Customer message"),
    "chat.direct_messages": N_("One-on-one messages"),
    "chat.group_messages": N_("Group messages"),
    "customer.added": N_("Customer added"),
    "customer.archive_consented": N_("Customer consented to archiving"),
    "customer.deleted": N_("Customer deleted by the advisor"),
    "customer.edited": N_("Customer edited"),
    "customer.invested": N_("Customer invested"),
    "customer.lost": N_("Customer lost"),
    "customer.redeemed": N_("Customer redeemed"),
    "customer.stage_changed": N_("Lifecycle stage changed"),
    "customer.transfer_failed": N_("Customer transfer failed"),
    "customer.transferred": N_("Customer transferred"),
    "customer.transferred_out": N_("Customer transferred out"),
    "customer.verified": N_("Customer verified"),
    "group.created": N_("Group created"),
    "group.dismissed": N_("Group dismissed"),
    "group.joined": N_("Joined a group"),
    "group.left": N_("Left a group"),
    "group.member_joined": N_("Group member joined"),
    "group.member_left": N_("Group member left"),
    "group.updated": N_("Group updated"),
}
SUBSCRIBERS: dict[str, str] = {
    "together": N_("record in the database"),
    "acquisition.group_invitation": N_("group invitation"),
    "acquisition.keyword_reply": N_("keyword reply"),
    "compliance.unsubscribe_reply": N_("opt-out reply"),
    "communities.moderate_group_messages": N_("red-line check"),
    "acquisition.attribute": N_("channel attribution"),
    "acquisition.welcome": N_("welcome message"),
    "customers.upsert_contact": N_("customer record"),
    "integration.webhooks": N_("webhooks"),
    "sop.enrol_added": N_("customer SOP enrolment"),
    "compliance.archive_consent": N_("archive consent"),
    "acquisition.deleted": N_("channel figures"),
    "customers.contact_deleted": N_("customer record"),
    "customers.contact_edited": N_("customer record"),
    "customers.invested": N_("lifecycle stage"),
    "acquisition.lost": N_("channel figures"),
    "customers.contact_lost": N_("customer record"),
    "customers.redeemed": N_("lifecycle stage"),
    "compliance.handover_transfer_failed": N_("handover retry"),
    "customers.transfer_failed": N_("customer record"),
    "customers.follow_transferred": N_("follow relation moved"),
    "customers.contact_transferred_out": N_("customer record"),
    "customers.link_verified": N_("firm record linked"),
    "communities.group_created": N_("group record"),
    "communities.group_dismissed": N_("group record"),
    "communities.attribute_join": N_("join way attribution"),
    "communities.removed_offender": N_("red-line alert closed"),
    "communities.member_joined": N_("group welcome and members"),
    "communities.member_left": N_("group members"),
    "communities.group_updated": N_("group record"),
    **{f"record.analytics.{what}": N_("analytics event") for what in (
        "customer_added", "customer_lost", "customer_verified", "group_joined", "group_left", "direct_messages",
        "order_invested", "order_redeemed")},
}


def job_kind_label(name: str, gettext: Callable[[str], str]) -> str:
    """The readable label of a job's name, or the name itself when none is known."""
    whole = JOB_KINDS.get(name)
    if whole is not None:
        return gettext(whole)
    if name.startswith("event:"):
        parts = name.split(":")
        event, subscriber = parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""
        if event in EVENTS and subscriber in SUBSCRIBERS:
            return f"{gettext(EVENTS[event])} → {gettext(SUBSCRIBERS[subscriber])}"
    return name
