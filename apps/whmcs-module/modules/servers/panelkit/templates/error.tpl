{* panelkit: shown instead of the overview when the provisioner cannot be asked. *}
<div class="alert alert-warning">{$panelkit_error|escape:'html'}</div>
