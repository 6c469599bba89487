# tflint configuration for every module and environment (make validate runs
# `tflint --recursive --config "$PWD/.tflint.hcl"` from terraform/). The
# Terraform ruleset is bundled with tflint, so nothing is downloaded.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  # "all": typed and documented variables and outputs, pinned providers,
  # standard module structure, no unused declarations, naming convention...
  preset = "all"
}
