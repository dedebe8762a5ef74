//! The built-in prompts of model-driven agents. They are templates like users' prompts and
//! are rendered by [`crate::template`] with the same context.

/// The system prompt used when an agent names none.
pub const DEFAULT_SYSTEM_PROMPT: &str = "\
You are an expert engineer working in a Linux container through a bash shell.
Use the `bash` tool to run commands (one command per call; each call starts a new shell
in the working directory, so chain steps with `&&` or use absolute paths). Check your work
before you finish. When the task is complete, call the `finish` tool.
You have at most {{ limits.max_turns }} turns and {{ limits.max_time }} seconds.";

/// The system prompt of `computer-use` agents that name none.
pub const DEFAULT_COMPUTER_SYSTEM_PROMPT: &str = "\
You are operating a Linux desktop through your computer tool: you see screenshots and act
with the mouse and the keyboard. Look at each screenshot before acting, and check that an
action had the effect you wanted. When the task is complete, say so in a short message
without calling the tool.
You have at most {{ limits.max_turns }} turns and {{ limits.max_time }} seconds.";

/// The first user message used when an agent names none: the task's instruction.
pub const DEFAULT_USER_PROMPT: &str = "{{ instruction }}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{compile, tests::sample};

    #[test]
    fn the_default_prompts_check_and_render_with_the_documented_context() {
        for (name, source) in [
            ("system", DEFAULT_SYSTEM_PROMPT),
            ("computer", DEFAULT_COMPUTER_SYSTEM_PROMPT),
            ("user", DEFAULT_USER_PROMPT),
        ] {
            let template = compile(name, source).unwrap();
            assert_eq!(template.check(&sample()), vec![], "{name}");
        }
        let system = compile("system", DEFAULT_SYSTEM_PROMPT).unwrap();
        assert!(
            system
                .render(&sample())
                .unwrap()
                .contains("at most 10 turns")
        );
        let user = compile("user", DEFAULT_USER_PROMPT).unwrap();
        assert_eq!(user.render(&sample()).unwrap(), "Fix the bug");
    }
}
