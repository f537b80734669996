"""Audiences (客群): saved segments of a corp's customers, defined by a rule over what Siyu stores,
counted live and every day, and handed to broadcasts, SOP and campaigns as one SQL subquery."""
