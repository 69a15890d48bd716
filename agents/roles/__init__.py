"""Economy roles built on AgoraAgent: sellers and buyers (users, advertisers and validators build on the same base)."""
