{* panelkit: the service overview in the client area (variables from panelkit_ClientArea). *}
<div class="panelkit-overview">
    <h3>Service status</h3>
    <div class="row">
        <div class="col-sm-5">State</div>
        <div class="col-sm-7">
            {$panelkit_state|escape:'html'}
            {if $panelkit_working} <span class="label label-info">being updated</span>{/if}
        </div>
    </div>
    {if $panelkit_username}
    <div class="row">
        <div class="col-sm-5">Account</div>
        <div class="col-sm-7">{$panelkit_username|escape:'html'}</div>
    </div>
    {/if}
    {if $panelkit_ips}
    <div class="row">
        <div class="col-sm-5">IP addresses</div>
        <div class="col-sm-7">{foreach $panelkit_ips as $ip}{$ip|escape:'html'}<br>{/foreach}</div>
    </div>
    {/if}
    {if $panelkit_last_step}
    <div class="row">
        <div class="col-sm-5">Last step</div>
        <div class="col-sm-7">{$panelkit_last_step|escape:'html'}</div>
    </div>
    {/if}
    {if $panelkit_fields}
    <h3>Usage</h3>
    {foreach $panelkit_fields as $field}
    <div class="row">
        <div class="col-sm-5">{$field.label|escape:'html'}</div>
        <div class="col-sm-7">
            {$field.value|escape:'html'}{if $field.unit} {$field.unit|escape:'html'}{/if}{if $field.limit} / {$field.limit|escape:'html'}{if $field.unit} {$field.unit|escape:'html'}{/if}{/if}
        </div>
    </div>
    {/foreach}
    {/if}
    {foreach $panelkit_links as $link}
    <a class="btn btn-default" href="{$link.url|escape:'html'}" target="_blank" rel="noopener">{$link.label|escape:'html'}</a>
    {/foreach}
</div>
